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

from recbole.utils import get_environment, init_logger, init_seed, set_color

from recbole_darec.checkpoints import (check_belongs, config_from_checkpoint, load_checkpoint, load_weights,
                                       resume_source, split_fingerprint)
from recbole_darec.cli_errors import UserError
from recbole_darec.config import Config
from recbole_darec.data.atomic_check import check_atomic_headers, load_dataset
from recbole_darec.data.protocol import data_preparation
from recbole_darec.dataset_lock import folder_lock
from recbole_darec.failed_run import discard_outputs_on_user_error
from recbole_darec.trainer import get_plugin_trainer


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


def dataset_build_lock(config):
    """The dataset folder's lock (:mod:`recbole_darec.dataset_lock`), held while a run prepares and loads data.

    An aligned model's ``prepare_data`` (re)writes ``<ds>.useremb`` (on ml-100k user profiles follow the seed's
    split) and RecBole then loads it: two runs with different seeds interleaving there (a comparison, Ray Tune
    trials, the semantic CLI, two terminals) would load each other's profiles. Every run takes turns here, whatever
    its model; training itself runs concurrently. A folder that does not exist (yet) takes no lock.
    """
    folder = Path(config["data_path"])
    return folder_lock(folder) if folder.is_dir() else contextlib.nullcontext()


@contextlib.contextmanager
def config_errors_are_user_errors():
    """The plugin's models and protocols reject a bad config value with a ValueError naming the key."""
    try:
        yield
    except ValueError as err:
        if isinstance(err, UserError):
            raise
        raise UserError(str(err)) from err


def build(config):
    """Dataset, dataloaders, model and trainer for a config; the same path for the CLI, Ray and comparisons."""
    model_class = config.model_class
    prepare = getattr(model_class, "prepare_data", None)
    with dataset_build_lock(config):
        if prepare is not None:
            init_seed(config["seed"], config["reproducibility"])
            prepare(config)  # e.g. build semantic embedding files before RecBole loads the dataset
        # Seed right before the split: a random split (ml-100k) must be the same whatever ran before.
        init_seed(config["seed"], config["reproducibility"])
        dataset = load_dataset(config)
        with config_errors_are_user_errors():
            train_data, valid_data, test_data = data_preparation(config, dataset)
            init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
            model = model_class(config, train_data.dataset).to(config["device"])  # reads the manifest (split check)
    trainer = get_plugin_trainer(config)(config, model)
    trainer.split_fingerprint = split_fingerprint(train_data, valid_data, test_data)
    return dataset, (train_data, valid_data, test_data), model, trainer


def _train_and_test(config, saved, epoch_callback=None, verbose=True, run=None):
    logger = getLogger()
    dataset, (train_data, valid_data, test_data), model, trainer = build(config)
    if run is not None:
        run.trainer = trainer
    if verbose:
        logger.info(dataset)
        logger.info(model)
    trainer.epoch_callback = epoch_callback
    if config["resume_from"]:  # RecBole's Config returns None for unset keys
        trainer.resume_checkpoint(str(config["resume_from"]))
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
    preflight(config)  # user mistakes end here, before the log file and the checkpoint folder are created
    with discard_outputs_on_user_error(config) as run:  # the rest (bad data files, ...) leaves nothing either
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        logger = getLogger()
        logger.info(sys.argv)
        logger.info(config)
        trainer, result = _train_and_test(config, saved, epoch_callback, run=run)
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


def preflight(config):
    """Checks that need no dataset load: the dataset's atomic-file headers and the checkpoint to resume from."""
    check_atomic_headers(config)
    if config["resume_from"]:
        path = resume_source(str(config["resume_from"]))
        checkpoint = load_checkpoint(path)
        check_belongs(checkpoint, config, None, path)


def load_data_and_model(model_file):
    """Rebuild config, model (with its saved weights), dataset and dataloaders from a plugin checkpoint.

    The checkpoint is read with torch's safe loader; the config is rebuilt from the stored overrides as typed
    values (never evaluated), and the split rebuilt from them must be the one the checkpoint was trained on.
    """
    checkpoint = load_checkpoint(model_file)
    # The checkpoint's own folder: the rebuilt trainer creates no new saved/ folder where this is called.
    config = config_from_checkpoint(checkpoint, {"checkpoint_dir": str(Path(model_file).resolve().parent)}, model_file)
    check_atomic_headers(config)
    init_seed(config["seed"], config["reproducibility"])
    dataset, (train_data, valid_data, test_data), model, trainer = build(config)
    check_belongs(checkpoint, config, trainer.split_fingerprint, model_file)
    load_weights(model, checkpoint, model_file)
    return config, model, dataset, train_data, valid_data, test_data
