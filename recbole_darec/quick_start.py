"""Train-and-evaluate entry points, shaped like RecBole's ``run_recbole`` / ``objective_function``.

``recbole.quick_start`` is deliberately not imported: it imports ray at module load and its
``objective_function`` reports *test* metrics to Ray Tune. Nothing here reports to Ray; tuning code passes an
``epoch_callback`` and reports validation metrics itself.
"""
import contextlib
import logging
import sys
from logging import getLogger
from pathlib import Path

from recbole.data import create_dataset
from recbole.utils import get_environment, init_logger, init_seed, set_color

from recbole_darec.config import Config
from recbole_darec.data.protocol import data_preparation
from recbole_darec.trainer import get_plugin_trainer, load_checkpoint


def format_result_table(valid_result, test_result):
    """A plain-text table with one row per metric and the best-valid / test columns."""
    metrics = list(test_result or valid_result or {})
    width = max([len(m) for m in metrics] + [6])
    lines = [f"{'metric':<{width}}  {'valid':>8}  {'test':>8}", f"{'-' * width}  {'-' * 8}  {'-' * 8}"]
    for metric in metrics:
        valid = (valid_result or {}).get(metric, float("nan"))
        test = (test_result or {}).get(metric, float("nan"))
        lines.append(f"{metric:<{width}}  {valid:>8.4f}  {test:>8.4f}")
    return "\n".join(lines)


@contextlib.contextmanager
def dataset_build_lock(config):
    """Serialise, across processes on one machine, the part of a run that writes and reads the dataset folder.

    An aligned model's ``prepare_data`` (re)writes ``<ds>.useremb`` (on ml-100k user profiles follow the seed's
    split) and RecBole then loads it: two runs with different seeds interleaving there (a comparison, Ray Tune
    trials, two terminals) would load each other's profiles -- the split check then stops one of them. A lock
    file in the dataset folder makes them take turns; training itself runs concurrently. Where the folder is
    read-only (nothing is written there either) or fcntl is unavailable, no lock is taken.
    """
    try:
        import fcntl

        handle = open(Path(config["data_path"]) / f".{config['dataset']}.build.lock", "a")
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(config):
    """Dataset, dataloaders, model and trainer for a config; the same path for the CLI, Ray and comparisons."""
    model_class = config.model_class
    prepare = getattr(model_class, "prepare_data", None)
    with dataset_build_lock(config) if prepare is not None else contextlib.nullcontext():
        if prepare is not None:
            init_seed(config["seed"], config["reproducibility"])
            prepare(config)  # e.g. build semantic embedding files before RecBole loads the dataset
        # Seed right before the split: a random split (ml-100k) must be the same whatever ran before.
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = model_class(config, train_data.dataset).to(config["device"])  # reads the manifest (split check)
    trainer = get_plugin_trainer(config)(config, model)
    return dataset, (train_data, valid_data, test_data), model, trainer


def _train_and_test(config, saved, epoch_callback=None, verbose=True):
    logger = getLogger()
    dataset, (train_data, valid_data, test_data), model, trainer = build(config)
    if verbose:
        logger.info(dataset)
        logger.info(model)
    trainer.epoch_callback = epoch_callback
    if config["resume_from"]:  # RecBole's Config returns None for unset keys
        trainer.resume_checkpoint(config["resume_from"])
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    return trainer, {
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": _plain_floats(best_valid_result),
        "test_result": _plain_floats(test_result),
    }


def _plain_floats(result):
    # RecBole's metrics are numpy scalars on numpy 2; plain floats print, compare and serialise cleanly.
    return None if result is None else type(result)((k, float(v)) for k, v in result.items())


def run_recbole_darec(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
                      epoch_callback=None):
    """Train ``model`` on ``dataset`` with early stopping on validation, then evaluate once on test.

    Args:
        model (str): plugin or RecBole model name (``DaRecLightGCN``, ``LightGCN``, ...).
        dataset (str): dataset name (``ml-100k``, ``yelp``, ``amazon-book``, ...).
        config_file_list (list[str]): YAML files, later ones win.
        config_dict (dict): parameter overrides (above files, below the command line, as in RecBole).
        saved (bool): save the best checkpoint and reload it for the test evaluation.
        epoch_callback (callable): ``f(trainer, epoch_idx, valid_score, valid_result)`` after each validation.

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result`` (RecBole's shape).
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    trainer, result = _train_and_test(config, saved, epoch_callback)
    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {result['best_valid_result']}")
    logger.info(set_color("test result", "yellow") + f": {result['test_result']}")
    logger.info("\n" + format_result_table(result["best_valid_result"], result["test_result"]))
    return result


def objective_function(config_dict=None, config_file_list=None, saved=True, epoch_callback=None):
    """RecBole's objective-function shape for tuning: quiet logs, returns the result dict, never reports to Ray."""
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    logger = getLogger()
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    init_logger(config)
    logging.basicConfig(level=logging.ERROR)
    _, result = _train_and_test(config, saved, epoch_callback, verbose=False)
    return {"model": config["model"], **result}


def load_data_and_model(model_file):
    """Rebuild config, model (with its saved weights), dataset and dataloaders from a plugin checkpoint.

    The checkpoint is read with torch's safe loader; the config is rebuilt from the stored overrides.
    """
    checkpoint = load_checkpoint(model_file)
    config = Config(model=checkpoint["model"], dataset=checkpoint["dataset"],
                    config_dict=checkpoint["config_overrides"])
    init_seed(config["seed"], config["reproducibility"])
    dataset, (train_data, valid_data, test_data), model, _ = build(config)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
