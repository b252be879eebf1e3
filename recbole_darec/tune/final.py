"""The one test evaluation of a sweep: the best trial's model (reloaded, or retrained from its config)."""
import json
import shutil
import warnings
from pathlib import Path

import torch

from recbole_darec.atomic import atomic_write_json
from recbole_darec.checkpoints import load_checkpoint
from recbole_darec.config import isolated_config
from recbole_darec.single_run import plain_floats, reload, run_once
from recbole_darec.text_tables import format_result_table
from recbole_darec.tune.trainable import BEST_FILE

TEST_FILE = "test_result.json"
MODEL_FILE = "best_model.pth"


def _driver_gpu_id(settings):
    if settings.get("gpus_per_trial") and torch.cuda.is_available():
        return str(settings["config_dict"].get("gpu_id", "0"))
    return ""


def evaluate_best(best, settings, params, exp_path, mode="reload"):
    """Evaluate the best trial on test exactly once; writes ``best_model.pth`` and ``test_result.json``.

    Args:
        best (ray.tune.Result): the best trial by validation.
        settings (dict): the trainable's settings (model, dataset, merged config dict, resources).
        params (dict): the best trial's searched parameters.
        exp_path (Path): the experiment folder.
        mode (str): ``reload`` the best checkpoint the trial saved, or ``retrain`` its config from scratch
            (early stopping on validation as in the trial).

    Returns:
        dict: the test metrics.
    """
    with warnings.catch_warnings():
        # RecBole's pandas FutureWarnings would bury the sweep's closing summary.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
        return _evaluate_best(best, settings, params, Path(exp_path), mode)


def _evaluate_best(best, settings, params, exp_path, mode):
    gpu_id = _driver_gpu_id(settings)
    model_file = exp_path / MODEL_FILE
    if mode == "reload":
        _copy_best_checkpoint(best, model_file)
        checkpoint, _, (_, (train_data, valid_data, test_data), _, trainer) = reload(model_file, {"gpu_id": gpu_id})
        trainer.eval_collector.data_collect(train_data)  # as fit() would, for metrics that need train counts
        # Re-validating the reloaded model checks it is the one the trial reported (cheap next to training).
        valid_result = trainer.evaluate(valid_data, load_best_model=False)
        best_epoch = checkpoint["epoch"]
        test_result = trainer.evaluate(test_data, load_best_model=False)
    else:
        config_dict = {**settings["config_dict"], **params, "gpu_id": gpu_id,
                       "checkpoint_dir": str(exp_path / "retrain")}
        trainer, result, _ = run_once(isolated_config(settings["model"], settings["dataset"], config_dict=config_dict))
        shutil.copy2(trainer.saved_model_file, model_file)
        best_epoch = load_checkpoint(model_file)["epoch"]
        valid_result, test_result = result["best_valid_result"], result["test_result"]
    record = {
        "trial_id": best.metrics.get("trial_id"),
        "params": params,
        "mode": mode,
        "best_epoch": best_epoch,
        "trial_best_valid_score": best.metrics.get("best_valid_score"),
        "valid_result": plain_floats(valid_result) or {},
        "test_result": plain_floats(test_result) or {},
        "model_file": str(model_file),
    }
    atomic_write_json(exp_path / TEST_FILE, record, indent=2, default=str)
    return record["test_result"]


def _copy_best_checkpoint(best, target):
    checkpoint = best.checkpoint
    if checkpoint is None:
        raise FileNotFoundError(f"trial {best.path} left no checkpoint; rerun with --final=retrain")
    with checkpoint.as_directory() as folder:
        source = Path(folder) / BEST_FILE
        if not source.is_file():
            raise FileNotFoundError(f"{source} missing in the best trial's checkpoint; rerun with --final=retrain")
        shutil.copy2(source, target)


def summary(result, meta, exp_path):
    """Plain-text closing report of a sweep."""
    lines = [f"Experiment: {exp_path}",
             f"Trials: {len(result.table)}  (table: trials.csv / trials.md, plots: sensitivity_*.png)",
             f"Best trial {result.best_trial_id} by valid {meta['valid_metric']}: {result.best_valid_score}",
             f"Best params: {result.best_params}"]
    record_file = Path(exp_path) / TEST_FILE
    if result.test_result is not None and record_file.is_file():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        lines.append(f"Test (evaluated once, {record['mode']}ed best model, epoch {record['best_epoch']}):")
        lines.append(format_result_table(record["valid_result"], record["test_result"]))
    return "\n".join(lines)
