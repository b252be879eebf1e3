"""The Ray Tune trainable: one RecBole training run that reports validation metrics after every evaluation.

Test metrics are never computed here; the sweep evaluates the best configuration on test once, afterwards.
Each trial keeps its RecBole checkpoints (``latest.pth`` for resuming, ``best.pth`` for the final evaluation) in
``<trial working dir>/checkpoints`` and hands that folder to Ray with every report, so a retried or resumed trial
continues from its last evaluation and the best model survives on the experiment's storage.
"""
import logging
import os
import shutil
import warnings
from pathlib import Path

import torch
from recbole.utils import early_stopping

from recbole_darec import checkpoints
from recbole_darec.atomic import atomic_path
from recbole_darec.config import isolated_config
from recbole_darec.single_run import plain_floats, run_once

LATEST_FILE = "latest.pth"
BEST_FILE = "best.pth"
BEST_KEY = "tune_best"  # in latest.pth: epoch and valid metrics of the trial's best evaluation


def train_trial(params, settings):
    """Ray Tune function trainable.

    Args:
        params (dict): the sampled parameters (config keys) of this trial.
        settings (dict): ``model``, ``dataset``, ``config_dict`` (files, fixed values and overrides, merged by
            the driver so workers need no config files), ``cpus_per_trial``, ``gpus_per_trial``.
    """
    from ray import tune  # lazy: ray, only inside a trial

    _quiet_worker()
    torch.set_num_threads(max(1, int(settings.get("cpus_per_trial") or 1)))
    params = dict(params)
    config_dict = {**settings["config_dict"], **params}
    # Ray runs each trial in its own working directory; the trial id keeps folders apart even when it does not
    # (RAY_CHDIR_TO_TRIAL_DIR=0). Files from an earlier attempt are dropped: Ray's checkpoint is the truth.
    checkpoint_dir = Path.cwd() / "checkpoints" / tune.get_context().get_trial_id()
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    checkpoint_dir.mkdir(parents=True)
    config_dict.update(
        checkpoint_dir=str(checkpoint_dir),
        show_progress=False,
        # Ray has set CUDA_VISIBLE_DEVICES to this trial's GPU share; RecBole rewrites it from gpu_id.
        gpu_id=os.environ.get("CUDA_VISIBLE_DEVICES", "") if settings.get("gpus_per_trial") else "",
    )
    config = isolated_config(settings["model"], settings["dataset"], config_dict=config_dict)
    reporter = _Reporter(checkpoint_dir)

    def resume_from_ray(trainer):  # a retried or resumed trial: continue after its last evaluation
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return
        with checkpoint.as_directory() as folder:
            for name in (LATEST_FILE, BEST_FILE):
                if (Path(folder) / name).is_file():
                    shutil.copy2(Path(folder) / name, checkpoint_dir / name)
        trainer.resume_checkpoint(checkpoint_dir / LATEST_FILE)
        reporter.best = checkpoints.load_checkpoint(checkpoint_dir / LATEST_FILE).get(BEST_KEY, {})

    run_once(config, saved=False, epoch_callback=reporter, before_fit=resume_from_ray, test=False)


def _quiet_worker():
    # Every worker would repeat RecBole's pandas FutureWarnings and Ray's per-report "Checkpoint successfully
    # created" line into the driver's console; errors and other warnings still come through.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)


class _Reporter:
    """Trainer epoch callback: save checkpoints, then report the validation metrics to Ray."""

    def __init__(self, checkpoint_dir):
        self.checkpoint_dir = Path(checkpoint_dir)
        self.best = {}  # epoch and valid metrics of the best evaluation so far (kept in latest.pth for resumes)

    def __call__(self, trainer, epoch_idx, valid_score, valid_result):
        import ray  # lazy: ray, only inside a trial
        from ray import tune

        # The callback runs before RecBole updates its early-stopping state, so compute that update here: the
        # checkpoint must hold the state *after* this evaluation for a resumed trial to stop at the same epoch.
        best, cur_step, stop, improved = early_stopping(
            float(valid_score), trainer.best_valid_score, trainer.cur_step,
            max_step=trainer.stopping_step, bigger=trainer.valid_metric_bigger,
        )
        if improved:
            trainer._save_checkpoint(epoch_idx, verbose=False, saved_model_file=str(self.checkpoint_dir / BEST_FILE))
            self.best = {"epoch": int(epoch_idx), **plain_floats(valid_result)}
        state = trainer._checkpoint_state(epoch_idx)
        state.update(best_valid_score=float(best), cur_step=cur_step)
        if improved:
            state["best_valid_result"] = dict(plain_floats(valid_result))
        state[BEST_KEY] = dict(self.best)
        state["role"] = checkpoints.LAST  # what a retried trial continues from; best.pth is its pair
        with atomic_path(self.checkpoint_dir / LATEST_FILE) as tmp:
            torch.save(state, tmp)

        metrics = {
            "valid_score": float(valid_score),
            "best_valid_score": float(best),
            "epoch": int(epoch_idx),
            "early_stop": bool(stop),  # RecBole's own early stopping ends the trial after this report
            # The best evaluation so far travels in every report: Ray's result.json may lose rows reported just
            # before a failure, the last result of a trial is always kept.
            "best_epoch": self.best.get("epoch", -1),
            **{f"best_valid_{k}": v for k, v in self.best.items() if k != "epoch"},
            "node_id": ray.get_runtime_context().get_node_id(),
            **{f"valid_{name}": float(value) for name, value in valid_result.items()},
        }
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(self.checkpoint_dir)))
