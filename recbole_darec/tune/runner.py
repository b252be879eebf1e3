"""Run a sweep: validate everything before Ray starts, build the Tuner, then report and test the best trial once."""
import dataclasses
import json
import math
import os
import shlex
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from recbole_darec.atomic import atomic_write_json
from recbole_darec.cli_errors import UserError
from recbole_darec.config import isolated_config
from recbole_darec.config_keys import ESCAPE_KEY, allowed_extra_keys, undefined_keys
from recbole_darec.tune import final
from recbole_darec.tune import results as report
from recbole_darec.tune.space import SEARCH_MODES, SearchSpaceError, load_space, parse_space
from recbole_darec.tune.trainable import train_trial

SCHEDULERS = ("asha", "fifo")
FINAL_MODES = ("reload", "retrain", "none")
SWEEP_FILE = "sweep.json"  # the sweep's own settings, so --resume needs only the experiment's name
# sweep.json's "status": running while a run of run_hyper.py works on it; interrupted (Ctrl+C / SIGTERM, or stopped
# with trials unfinished: --resume continues it); failed (an error); finished (searched and tested).
RUNNING, INTERRUPTED, FAILED, FINISHED = "running", "interrupted", "failed", "finished"
METRIC = "valid_score"  # the config's valid_metric, reported by every trial after each evaluation


class SweepError(UserError):
    """An option or setting that makes the sweep impossible; raised before Ray starts."""


@dataclass
class SweepOptions:
    """Everything a sweep needs; the CLI flags map one to one onto these fields."""

    model: str = None
    dataset: str = None
    space: str = None  # search-space YAML file
    num_samples: int = None  # None: 1 when every parameter is a grid (or --search grid), else 10
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = None  # None: 1 when the Ray cluster has GPUs, else 0 (CPU-only)
    max_concurrent: int = None
    scheduler: str = "asha"
    search: str = "random"
    address: str = None  # None: start a private local Ray; "auto" or HOST:PORT: join that cluster
    resume: bool = False
    name: str = None
    storage_path: str = "ray_results"
    max_failures: int = 2
    config_files: list = None
    overrides: dict = field(default_factory=dict)
    grace_period: int = 1
    reduction_factor: int = 2
    final: str = "reload"  # reload the best trial's best checkpoint, retrain its config, or skip the test
    num_cpus: int = None  # CPUs of the private local Ray (ignored with address)
    allow_unknown_params: bool = False
    verbose: int = 1


@dataclass
class SweepResult:
    """What a finished (or interrupted) sweep produced."""

    experiment_path: Path
    table: object  # pandas.DataFrame, one row per trial
    best_trial_id: str = None
    best_params: dict = None
    best_valid_score: float = None
    test_result: dict = None
    interrupted: bool = False  # stopped before the search ended or before the test: nothing final was written
    result_grid: object = None
    stop_signal: int = None  # signal.SIGTERM when a SIGTERM stopped it; otherwise Ctrl+C (SIGINT)
    resume_args: str = ""  # the flags that continue an interrupted sweep


def check_options(opts):
    """Validate option values (not the space or the config); raises :class:`SweepError`."""
    if opts.scheduler not in SCHEDULERS:
        raise SweepError(f"unknown scheduler '{opts.scheduler}': use one of {', '.join(SCHEDULERS)}")
    if opts.search not in SEARCH_MODES:
        raise SweepError(f"unknown search '{opts.search}': use one of {', '.join(SEARCH_MODES)}")
    if opts.final not in FINAL_MODES:
        raise SweepError(f"unknown final mode '{opts.final}': use one of {', '.join(FINAL_MODES)}")
    if opts.num_samples is not None and opts.num_samples < 1:
        raise SweepError(f"--num-samples must be >= 1, got {opts.num_samples}")
    if not opts.cpus_per_trial or opts.cpus_per_trial <= 0:
        raise SweepError(f"--cpus-per-trial must be > 0, got {opts.cpus_per_trial}")
    gpus = opts.gpus_per_trial
    if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
        raise SweepError(f"--gpus-per-trial must be 0, a fraction in (0, 1], or a whole number; got {gpus}")
    if opts.max_concurrent is not None and opts.max_concurrent < 1:
        raise SweepError(f"--max-concurrent must be >= 1, got {opts.max_concurrent}")
    if opts.max_failures < -1:
        raise SweepError(f"--max-failures must be >= -1 (-1: retry forever), got {opts.max_failures}")
    if opts.grace_period < 1 or opts.reduction_factor < 2:
        raise SweepError("ASHA needs --grace-period >= 1 and --reduction-factor >= 2")
    if "://" in str(opts.storage_path):
        raise SweepError("--storage-path must be a filesystem path (on a cluster: one every node mounts, e.g. NFS)")
    if opts.address and opts.num_cpus:
        raise SweepError("--num-cpus sizes a private local Ray; it cannot be combined with --address")
    if opts.search == "optuna":
        try:
            import optuna  # noqa: F401  (lazy: optional; this only checks it is installed)
        except ImportError:
            raise SweepError("--search optuna needs the optuna package: pip install optuna "
                             "(or use --search random|grid)") from None


def prepare(opts):
    """Everything that can go wrong before Ray starts: options, space, model, dataset, config keys.

    Returns:
        tuple: (SearchSpace, settings dict for the trainable, meta dict with mode / max_t / valid_metric).
    """
    check_options(opts)
    if not opts.model or not opts.dataset or not opts.space:
        raise SweepError("--model, --dataset and --space are required (except with --resume)")
    space = load_space(opts.space, search=opts.search)
    for path in opts.config_files or []:
        if not Path(path).is_file():
            raise SweepError(f"config file {path} does not exist")
    # One Config of files + overrides: its keys say what a trial may search; the files' values are sent to the
    # workers, which may not see the driver's files.
    probe = _config(opts.model, opts.dataset, opts.overrides or {}, opts.config_files)
    file_dict = dict(probe.file_config_dict) if opts.config_files else {}
    base = {**file_dict, **space.fixed, **(opts.overrides or {})}
    searched = list(space.params) + list(space.fixed)
    unknown, detail = undefined_keys(searched, probe)
    if unknown and opts.allow_unknown_params:  # the Config's own unknown-key check must let them through too
        if allowed_extra_keys(base) is not None:  # None: the user already allows every key
            base[ESCAPE_KEY] = sorted(set(unknown) | allowed_extra_keys(base))
    elif unknown:
        raise SweepError(
            f"{space.source}: {detail}, so the model would ignore it. Fix the name, or pass "
            "--allow-unknown-params if the model reads it without a default."
        )
    config = _config(opts.model, opts.dataset, base)
    eval_step = config["eval_step"] or 0
    if eval_step < 1 and "eval_step" not in space.params:
        raise SweepError("eval_step must be >= 1: trials report validation metrics after each evaluation")
    settings = {
        "model": opts.model, "dataset": opts.dataset, "config_dict": base,
        "cpus_per_trial": opts.cpus_per_trial, "gpus_per_trial": opts.gpus_per_trial,
    }
    meta = {
        "mode": "max" if config["valid_metric_bigger"] else "min",
        "valid_metric": str(config["valid_metric"]).lower(),
        "max_t": _max_evaluations(config, space),
    }
    return space, settings, meta


def _config(model, dataset, config_dict, config_files=None):
    """A driver-side Config; model/dataset mistakes surface here, before Ray starts, as SweepError."""
    try:
        return isolated_config(model, dataset, list(config_files or []) or None, config_dict)
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise SweepError(str(err).strip('"')) from err
    except ImportError as err:  # RecBole's zoo lookup imports optional libraries while searching for a name
        raise SweepError(f"cannot load model '{model}': {err}") from err


def _max_evaluations(config, space):
    """ASHA's max_t: the most evaluations a trial can make (RecBole validates every eval_step epochs)."""

    def candidates(key):
        p = space.params.get(key)
        if p is None:
            return [config[key]]
        return p.grid_values() if p.values is not None or p.type == "randint" else [p.lower, p.upper]

    epochs = max(int(e) for e in candidates("epochs"))
    step = max(1, min(int(s) for s in candidates("eval_step")))
    return max(1, epochs // min(step, epochs))


def experiment_path(opts):
    """Absolute experiment folder (Ray needs absolute storage paths)."""
    return Path(opts.storage_path).expanduser().resolve() / opts.name


def run_sweep(opts):
    """Run (or resume) a sweep and evaluate the best trial on test once.

    Args:
        opts (SweepOptions): see the CLI (``python run_hyper.py --help``).

    Returns:
        SweepResult
    """
    from ray import tune  # lazy: ray, only when a sweep runs (import recbole_darec.tune stays cheap)

    # num_to_keep forces an experiment snapshot every few reports; that is cheap here, and Ray's warning about
    # it would repeat all through a sweep of short epochs.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    opts = dataclasses.replace(opts)
    if opts.resume:
        opts, space, settings, meta = _load_sweep(opts)
    else:
        space, settings, meta = prepare(opts)
        opts.name = opts.name or f"{opts.model}-{opts.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp_path = experiment_path(opts)
    if not opts.resume and exp_path.exists():
        raise SweepError(f"experiment folder {exp_path} exists: add --resume to continue it, or choose --name")

    started_ray = _init_ray(opts)
    stop, working = _StopSignals(), False  # working: sweep.json says this call runs the sweep
    try:
        settings["gpus_per_trial"] = _resolve_gpus(opts)
        trainable = tune.with_resources(
            tune.with_parameters(train_trial, settings=settings),
            {"cpu": opts.cpus_per_trial, "gpu": settings["gpus_per_trial"]},
        )
        if opts.resume:
            tuner = tune.Tuner.restore(str(exp_path), trainable=trainable,
                                       resume_unfinished=True, resume_errored=True)
            _set_status(exp_path, RUNNING)
        else:
            exp_path.mkdir(parents=True)
            _save_sweep(exp_path, opts, space, settings, meta)
            tuner = _new_tuner(opts, space, meta, trainable)
        working = True
        grid = tuner.fit()
        stop.restore(signal.SIGINT)  # Ray leaves its Ctrl+C handler installed, which would ignore one in the test
        # On Ctrl+C Ray stops the trials, saves its state and returns from fit() as if done; only the saved state
        # (what --resume continues) still lists the stopped trials as unfinished.
        if stop.received or report.unfinished_trials(exp_path, expected=_expected_trials(opts, space)):
            return _interrupted(opts, exp_path, stop)
        table = report.trial_table(grid, space, meta)
        report.write_table(table, exp_path)
        report.sensitivity_plots(table, space, meta, exp_path)
        result = _finish(SweepResult(exp_path, table, result_grid=grid), grid, opts, settings, meta, exp_path)
        _set_status(exp_path, FINISHED)
        return result
    except KeyboardInterrupt:  # a second Ctrl+C while Ray saved its state, or one during the test
        if not (exp_path / SWEEP_FILE).is_file():
            raise
        return _interrupted(opts, exp_path, stop)  # nothing final written: --resume searches on, or tests again
    except Exception:
        if working:
            _set_status(exp_path, FAILED)
        raise
    finally:
        stop.restore()
        if started_ray:
            import ray  # lazy: ray, only when a sweep runs

            ray.shutdown()


class _StopSignals:
    """While a sweep runs, SIGTERM stops it as Ctrl+C does: Ray Tune's handler (installed during fit()) reacts to
    SIGINT only, and ray.init()'s SIGTERM handler exits at once, saving nothing."""

    def __init__(self):
        self.received = None
        main = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
        self._saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        if main:
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame):
        self.received = signum
        handler = signal.getsignal(signal.SIGINT)  # during fit(): Ray's, which stops the trials and saves
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    def restore(self, *signums):
        """Put back the handlers found at the start (all, or those of ``signums``)."""
        for signum in signums or list(self._saved):
            if signum in self._saved:
                handler = self._saved[signum]
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _interrupted(opts, exp_path, stop):
    _set_status(exp_path, INTERRUPTED)
    flags = [f"--name={opts.name}"]
    for flag, value, default in (("--storage-path", opts.storage_path, "ray_results"),
                                 ("--address", opts.address, None), ("--num-cpus", opts.num_cpus, None),
                                 ("--final", opts.final, "reload")):
        if value is not None and str(value) != str(default):
            flags.append(f"{flag}={value}")
    resume_args = "--resume " + " ".join(shlex.quote(f) for f in flags)
    return SweepResult(exp_path, None, interrupted=True, stop_signal=stop.received, resume_args=resume_args)


def _finish(result, grid, opts, settings, meta, exp_path):
    ok = [r for r in grid if r.error is None and METRIC in (r.metrics or {})]
    if not ok:
        raise SweepError(f"no trial of {exp_path} finished with a validation result; see its trial folders")
    best = grid.get_best_result(metric=METRIC, mode=meta["mode"], scope="all", filter_nan_and_inf=True)
    result.best_trial_id = best.metrics.get("trial_id")
    result.best_params = {k: best.config[k] for k in result.table.attrs.get("params", []) if k in best.config}
    result.best_valid_score = best.metrics.get("best_valid_score")
    if opts.final != "none":
        result.test_result = final.evaluate_best(best, settings, result.best_params, exp_path, mode=opts.final)
    print(final.summary(result, meta, exp_path))
    return result


def _new_tuner(opts, space, meta, trainable):
    from ray import tune  # lazy: ray, only when a sweep runs
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if opts.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=meta["max_t"],
                                  grace_period=min(opts.grace_period, meta["max_t"]),
                                  reduction_factor=opts.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    search_alg = None
    if opts.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch  # lazy: optional optuna

        search_alg = OptunaSearch()
    return tune.Tuner(
        trainable,
        param_space=space.to_tune(opts.search),
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=meta["mode"], scheduler=scheduler, search_alg=search_alg,
            num_samples=_num_samples(opts, space), max_concurrent_trials=opts.max_concurrent,
            reuse_actors=True,  # a worker imports torch/RecBole once, not once per trial
        ),
        run_config=tune.RunConfig(
            name=opts.name, storage_path=str(Path(opts.storage_path).expanduser().resolve()),
            failure_config=tune.FailureConfig(max_failures=opts.max_failures),
            # Each checkpoint holds latest.pth + best.pth, so older ones are never needed; 2 keeps one spare.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=opts.verbose,
        ),
    )


def _num_samples(opts, space):
    # Ray repeats the whole grid num_samples times: one pass is the natural default when nothing is random.
    only_grid = opts.search == "grid" or all(p.type == "grid" for p in space.params.values())
    return opts.num_samples or (1 if only_grid else 10)


def _expected_trials(opts, space):
    if opts.search == "grid":
        return _num_samples(opts, space) * math.prod(len(p.grid_values()) for p in space.params.values())
    return _num_samples(opts, space) * space.grid_size()


def _init_ray(opts):
    """Start a private local Ray, or join ``--address``; returns whether this call started Ray."""
    import ray  # lazy: ray, only when a sweep runs

    if ray.is_initialized():
        return False
    if opts.address:
        ray.init(address=opts.address)
    else:
        # "local": never attach to someone else's cluster on this machine by accident.
        ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=False)
    return True


def _resolve_gpus(opts):
    """GPUs per trial (default: 1 when the cluster has GPUs); a trial that can never fit is refused.

    On an existing cluster (``--address``) a shortfall is only a warning: an autoscaler may add nodes.
    """
    import ray  # lazy: ray, only when a sweep runs

    resources = ray.cluster_resources()
    gpus = (1 if resources.get("GPU", 0) else 0) if opts.gpus_per_trial is None else opts.gpus_per_trial
    short = [f"{need:g} {kind}" for kind, need in (("CPU", opts.cpus_per_trial), ("GPU", gpus))
             if need and resources.get(kind, 0) < need]
    if short:
        message = (f"a trial needs {' and '.join(short)} but the Ray cluster has {resources.get('CPU', 0):g} CPU "
                   f"and {resources.get('GPU', 0):g} GPU; lower --cpus-per-trial / --gpus-per-trial "
                   "(--gpus-per-trial 0 runs on CPUs only)")
        if not opts.address:
            raise SweepError(message)
        print(f"warning: {message}; trials wait until the cluster grows")
    return gpus


def _save_sweep(exp_path, opts, space, settings, meta):
    raw = {"space": {n: {k: v for k, v in dataclasses.asdict(p).items() if v is not None and k != "name"}
                     for n, p in space.params.items()},
           "fixed": space.fixed}
    record = {"options": dataclasses.asdict(opts), "space": raw, "settings": settings, "meta": meta,
              "status": RUNNING}
    _write_json(exp_path / SWEEP_FILE, record)


def _set_status(exp_path, status):
    record = json.loads((exp_path / SWEEP_FILE).read_text(encoding="utf-8"))
    _write_json(exp_path / SWEEP_FILE, {**record, "status": status})


def _write_json(path, record):
    atomic_write_json(path, record, indent=2, default=str)  # never a half-written sweep.json, whenever stopped


def _load_sweep(opts):
    """The stored options of an experiment, with this call's connection and final-evaluation choices."""
    if not opts.name:
        raise SweepError("--resume needs --name (the experiment to continue)")
    exp_path = experiment_path(opts)
    from ray import tune  # lazy: ray, only to resume a sweep

    if not (exp_path / SWEEP_FILE).is_file() or not tune.Tuner.can_restore(str(exp_path)):
        raise SweepError(f"nothing to resume at {exp_path}: no sweep was started there")
    record = json.loads((exp_path / SWEEP_FILE).read_text(encoding="utf-8"))
    stored = SweepOptions(**record["options"])
    for key in ("model", "dataset", "space"):
        given, kept = getattr(opts, key), getattr(stored, key)
        if given and kept and Path(str(given)).name != Path(str(kept)).name:
            raise SweepError(f"--{key}={given} differs from the experiment's {kept}; resume with the same one")
    stored = dataclasses.replace(stored, resume=True, address=opts.address, num_cpus=opts.num_cpus,
                                 final=opts.final, verbose=opts.verbose, storage_path=opts.storage_path)
    try:
        space = parse_space(record["space"], search=stored.search, source=str(exp_path / SWEEP_FILE))
    except SearchSpaceError as err:
        raise SweepError(f"stored search space is unreadable: {err}") from None
    return stored, space, record["settings"], record["meta"]
