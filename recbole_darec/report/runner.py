"""One (model, seed) training run -> one record, and the three ways to run many: sequential, processes, Ray.

:func:`run_one` is a module-level function of plain dicts in and out, so a process pool or a Ray task can run it.
Records come back to the driver, which alone appends them to ``runs.jsonl`` (no concurrent writers).
"""
import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from recbole.utils import init_logger

from recbole_darec.checkpoints import LAST_SUFFIX, check_belongs, load_checkpoint, setting_differences
from recbole_darec.cli_errors import UserError, listing
from recbole_darec.config import isolated_config
from recbole_darec.report.environment import machine_info, versions
from recbole_darec.single_run import plain_floats, run_once


def _best_epoch(history, bigger):
    """Index of the first evaluation with the best score (RecBole keeps the first on ties)."""
    best = None
    for epoch, score, _ in history:
        if best is None or (score > best[1] if bigger else score < best[1]):
            best = (epoch, score)
    return None if best is None else best[0]


def run_one(spec):
    """Train and test one model with one seed; return its record (a JSON-able dict).

    Args:
        spec (dict): ``model`` (the row label), ``dataset``, ``seed``, ``config_files`` (list), ``overrides``
            (dict), ``checkpoint_dir``; optional ``model_class`` (the model to build when the label names a
            variant), ``threads`` (torch CPU threads) and ``use_ray_gpu`` (take the GPU Ray
            assigned to this task).
    """
    # RecBole 1.2.1's pandas/torch FutureWarnings say nothing about this run; in workers they flood the console.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole(\.|$)")
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    # Quiet by default; 6 decimals instead of RecBole's 4 so means, stds and paired tests see unrounded values.
    config_dict = {"state": "WARNING", "show_progress": False, "metric_decimal_place": 6, **spec["overrides"],
                   "seed": int(spec["seed"]), "checkpoint_dir": str(spec["checkpoint_dir"])}
    if spec.get("use_ray_gpu") is not None:
        # Ray set CUDA_VISIBLE_DEVICES to this task's share; RecBole would rewrite it from gpu_id.
        config_dict["gpu_id"] = os.environ.get("CUDA_VISIBLE_DEVICES", "") if spec["use_ray_gpu"] else ""
    config = isolated_config(spec.get("model_class") or spec["model"], spec["dataset"],
                             spec.get("config_files") or None, config_dict)
    root = logging.getLogger()
    for handler in root.handlers[:]:  # one log file per run, not all runs into the first one
        root.removeHandler(handler)
    init_logger(config)
    log_file = _full_log_file(root)
    root.info(config)  # the whole configuration, as a CLI run logs it
    started = time.time()
    # Locks the dataset folder while it loads data; continues an interrupted attempt at this run if there is one.
    resume = _resume_interrupted(spec["checkpoint_dir"])
    progress = None if spec.get("progress_every") is None else _Progress(spec, config, spec["progress_every"])
    trainer, result, train_time = run_once(config, verbose=True, before_fit=resume, epoch_callback=progress)
    root.info(f"test result: {dict(result['test_result'])}")
    best_epoch = _best_epoch(trainer.valid_history, bool(config["valid_metric_bigger"]))
    return {
        "model": spec["model"], "model_class": config["model"], "seed": int(spec["seed"]), "dataset": spec["dataset"],
        "test": dict(result["test_result"]), "valid": dict(result["best_valid_result"] or {}),
        "best_valid_score": result["best_valid_score"], "valid_metric": config["valid_metric"].lower(),
        "train_time_s": train_time, "run_time_s": time.time() - started,
        "epochs_to_best": None if best_epoch is None else best_epoch + 1,
        "epochs_run": trainer._epoch_idx + 1,
        "resumed_from_epoch": trainer.resumed_from_epoch,  # None: trained in one go
        "curve": [{"epoch": int(e), "score": float(s), **plain_floats(r)}
                  for e, s, r in trainer.valid_history],
        "checkpoint": str(Path(trainer.saved_model_file).resolve()),
        "device": str(config["device"]), "machine": machine_info(), "versions": versions(),
        "overrides": spec["overrides"], "config_files": spec.get("config_files") or [],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "log_file": log_file,
        **_llm_tables(trainer.model), **_text_trust(trainer.model),
    }


def _llm_tables(model):
    """``{"llm_tables": {"user": sha256, "item": sha256}}`` of the LLM tables an aligned model trained with, else
    ``{}``. Re-encoded tables can differ in the last float bits, and DaRec's K-means turns that into another
    trajectory: the hashes say whether two records saw the same tables."""
    tables = getattr(model, "llm_table_sha256", None)
    return {"llm_tables": dict(tables)} if tables else {}


def _text_trust(model):
    """``{"text_trust": share of λ, "text_agreement": {...}}`` of a DaRec model (``darec_text_trust``; the
    agreement only when it was measured, ``auto``), else ``{}``."""
    trust = getattr(getattr(model, "head", None), "trust", None)
    if trust is None:
        return {}
    agreement = getattr(model, "text_agreement", None)
    return {"text_trust": float(trust), **({"text_agreement": asdict(agreement)} if agreement is not None else {})}


class _Progress:
    """Epoch callback: a console line about the run at most every ``every`` seconds (the console is otherwise
    quiet until the run ends, which may be hours)."""

    def __init__(self, spec, config, every):
        self.label = f"{spec['model']} seed={spec['seed']}"
        self.metric, self.bigger = config["valid_metric"].lower(), bool(config["valid_metric_bigger"])
        self.every, self.last_line = float(every), time.monotonic()

    def __call__(self, trainer, epoch_idx, valid_score, valid_result):
        now = time.monotonic()
        if now - self.last_line < self.every:
            return
        self.last_line = now
        best_epoch = _best_epoch(trainer.valid_history, self.bigger)  # holds this evaluation already
        best = next(score for epoch, score, _ in trainer.valid_history if epoch == best_epoch)
        elapsed = trainer.train_time_s()
        print(f"  {self.label}: epoch {epoch_idx + 1}/{trainer.epochs}, valid {self.metric} {valid_score:.4f} "
              f"(best {best:.4f} at epoch {best_epoch + 1}), {elapsed / (epoch_idx + 1):.1f} s/epoch, "
              f"{elapsed / 60:.0f} min of training", flush=True)


def _resume_interrupted(folder):
    """``before_fit`` hook: continue from the every-epoch checkpoint an interrupted attempt at this very run left in
    ``folder`` (same model, seed, split and settings), bit for bit as if never stopped; anything else there is stale
    and removed, so it is never taken for this run's checkpoint."""
    def before_fit(trainer):
        folder_path = Path(folder)
        last = sorted(folder_path.glob(f"*{LAST_SUFFIX}"), key=lambda p: p.stat().st_mtime)
        if last:
            checkpoint, reason = _read_if_resumable(last[-1], trainer)
            if reason is None:
                trainer.resume_checkpoint(str(last[-1]), checkpoint)
                what = ("its training had ended; evaluating it" if trainer._finished else
                        f"resuming the interrupted run after epoch {trainer.resumed_from_epoch}")
                logging.getLogger().warning(f"{folder_path.name}: {what} ({last[-1].name})")
                return
            logging.getLogger().warning(f"{folder_path.name}: {last[-1].name} not resumed ({reason}); "
                                        "the run starts over")
        for old in folder_path.glob("*.pth*"):
            old.unlink()

    return before_fit


def _read_if_resumable(path, trainer):
    """(checkpoint, None) when ``path`` is an interrupted attempt at ``trainer``'s run, else (None, the reason it
    is not). The checkpoint is read once, onto the trainer's device, and handed to ``resume_checkpoint``."""
    try:
        checkpoint = load_checkpoint(path, map_location=trainer.device)
        check_belongs(checkpoint, trainer.config, trainer.split_fingerprint, path)
    except UserError as err:
        return None, str(err)
    changed = setting_differences(checkpoint, trainer.config)
    if changed:
        return None, f"written with other settings: {listing(changed)}"
    return checkpoint, None


def _full_log_file(root):
    """Keep the console at the run's ``state`` (quiet) but write everything a single CLI run would log (dataset,
    model, each epoch's loss terms, ``log_grad_share``) to the run's own log file; returns that file's path."""
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.INFO)
            root.setLevel(min(root.level, logging.INFO))
            return str(Path(handler.baseFilename).resolve())
    return None


def _die_with_parent():
    """Pool-worker initializer: on Linux the kernel sends SIGTERM to this worker when the driver process dies, so
    ``kill <run_compare pid>`` does not leave runs training on in orphaned workers (Ctrl-C reaches the whole
    process group anyway). Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # lazy: Linux only

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the driver died before the request took effect
        os._exit(1)


def run_many(specs, on_record, on_error, parallel=1, ray_options=None):
    """Run ``specs``; ``on_record(spec, record)`` / ``on_error(spec, exc)`` are called in the driver as runs end.

    ``ray_options`` (dict: ``address``, ``cpus_per_run``, ``gpus_per_run``) selects Ray; else
    ``parallel`` processes (1 = in this process, in order).
    """
    if ray_options is not None:
        return _run_ray(specs, on_record, on_error, **ray_options)
    if parallel <= 1:
        for spec in specs:
            try:
                record = run_one(spec)
            except Exception as exc:  # noqa: BLE001  one failed run must not lose the others
                on_error(spec, exc)
            else:
                on_record(spec, record)
        return
    import multiprocessing  # lazy: only parallel > 1 uses a process pool
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // parallel)  # share the cores instead of oversubscribing them
    with ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_die_with_parent) as pool:
        futures = {pool.submit(run_one, {**spec, "threads": threads}): spec for spec in specs}
        try:
            for future in as_completed(futures):
                _deliver(futures[future], future.result, on_record, on_error)
        except KeyboardInterrupt:
            _stop_pool(pool)
            raise


def _stop_pool(pool):
    """Ctrl+C: leaving the pool's ``with`` would wait for the running runs and start the queued ones (a worker
    hit by the same Ctrl+C takes the next run). Cancel the queue and end the workers now; each run's every-epoch
    checkpoint lets the next invocation continue it."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()


def _run_ray(specs, on_record, on_error, address=None, cpus_per_run=1.0, gpus_per_run=0.0):
    import ray  # lazy: optional and heavy, only for --ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    try:
        _ray_loop(specs, on_record, on_error, cpus_per_run, gpus_per_run)
    finally:
        if started_here:
            ray.shutdown()


def _ray_loop(specs, on_record, on_error, cpus_per_run, gpus_per_run):
    import ray  # lazy: optional and heavy, only for --ray

    task = ray.remote(run_one).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)
    threads = max(1, int(cpus_per_run))
    extra = {"threads": threads, "use_ray_gpu": gpus_per_run > 0}
    pending = {task.remote({**spec, **extra}): spec for spec in specs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(done[0])
        _deliver(spec, lambda: ray.get(done[0]), on_record, on_error)


def _deliver(spec, get, on_record, on_error):
    try:
        record = get()
    except Exception as exc:  # noqa: BLE001
        on_error(spec, exc)
    else:
        on_record(spec, record)
