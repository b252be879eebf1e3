"""One run of one model, the path every entry point shares: seed -> data -> model -> trainer -> fit -> test.

The CLI (:mod:`recbole_darec.quick_start`), the Ray Tune trainable and its final evaluation, and the comparison
runner all train through :func:`run_once`; a checkpoint is rebuilt through :func:`reload`.
"""
import contextlib
from collections import namedtuple
from logging import getLogger
from pathlib import Path

from recbole.utils import init_seed

from recbole_darec.checkpoints import check_belongs, load_checkpoint, load_weights, split_fingerprint
from recbole_darec.cli_errors import UserError
from recbole_darec.config import config_from_checkpoint
from recbole_darec.config_checks import check_with_dataset
from recbole_darec.data.atomic_check import check_atomic_headers, load_dataset
from recbole_darec.data.protocol import data_preparation
from recbole_darec.dataset_lock import folder_lock
from recbole_darec.trainer import get_plugin_trainer

Built = namedtuple("Built", "dataset splits model trainer")  # splits: (train_data, valid_data, test_data)
RunOutcome = namedtuple("RunOutcome", "trainer result train_time_s")


def plain_floats(result):
    """RecBole's metrics are numpy scalars on numpy 2; plain floats print, compare and serialise cleanly."""
    return None if result is None else type(result)((k, float(v)) for k, v in result.items())


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
    """Seeded dataset, dataloaders, model and trainer for a config (a :class:`Built`)."""
    init_seed(config["seed"], config["reproducibility"])
    model_class = config.model_class
    prepare = getattr(model_class, "prepare_data", None)
    with dataset_build_lock(config):
        if prepare is not None:
            prepare(config)  # e.g. build semantic embedding files before RecBole loads the dataset
            # Seed right before the split: a random split (ml-100k) must be the same whatever ran before.
            init_seed(config["seed"], config["reproducibility"])
        dataset = load_dataset(config)
        with config_errors_are_user_errors():
            train_data, valid_data, test_data = data_preparation(config, dataset)
            check_with_dataset(config, dataset)  # the counts are known, nothing is allocated yet
            init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
            model = model_class(config, train_data.dataset).to(config["device"])  # reads the manifest (split check)
    trainer = get_plugin_trainer(config)(config, model)
    trainer.split_fingerprint = split_fingerprint(train_data, valid_data, test_data)
    return Built(dataset, (train_data, valid_data, test_data), model, trainer)


def run_once(config, saved=True, verbose=False, epoch_callback=None, before_fit=None, test=True):
    """Train ``config``'s model with early stopping on validation, then (``test``) evaluate it once on test.

    Args:
        saved (bool): save the best checkpoint and reload it for the test evaluation.
        verbose (bool): log the dataset, the model and every epoch.
        epoch_callback (callable): ``f(trainer, epoch_idx, valid_score, valid_result)`` after each validation.
        before_fit (callable): ``f(trainer)`` once the trainer exists (e.g. to restore a Ray checkpoint).

    Returns:
        RunOutcome: the trainer, RecBole's result dict (``best_valid_score``, ``valid_score_bigger``,
        ``best_valid_result``, ``test_result``; metrics as plain floats) and the seconds of training, over every
        resume of the run.
    """
    dataset, (train_data, valid_data, test_data), model, trainer = build(config)
    if verbose:
        getLogger().info(dataset)
        getLogger().info(model)
    trainer.epoch_callback = epoch_callback
    if before_fit is not None:
        before_fit(trainer)
    if config["resume_from"]:  # RecBole's Config returns None for unset keys
        trainer.resume_checkpoint(str(config["resume_from"]))
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, verbose=verbose, saved=saved,
                                                      show_progress=config["show_progress"])
    train_time_s = trainer.train_time_s()  # a resumed run counts its earlier sessions too
    test_result = None
    if test:
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    return RunOutcome(trainer, {
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": plain_floats(best_valid_result),
        "test_result": plain_floats(test_result),
    }, train_time_s)


def reload(model_file, overrides=None):
    """(checkpoint, config, :class:`Built` with the saved weights) of a plugin checkpoint.

    The checkpoint is read with torch's safe loader; the config is rebuilt from the stored overrides as typed
    values (never evaluated) plus ``overrides``, and the split rebuilt from them must be the one the checkpoint was
    trained on. The rebuilt trainer writes into the checkpoint's own folder (no new saved/ where this is called)
    and, as it trains nothing, writes no TensorBoard events (its writer is made at the first event: ``compat``).
    """
    checkpoint = load_checkpoint(model_file)
    extra = {"checkpoint_dir": str(Path(model_file).resolve().parent), **(overrides or {})}
    config = config_from_checkpoint(checkpoint, extra, model_file)
    check_atomic_headers(config)
    built = build(config)
    check_belongs(checkpoint, config, built.trainer.split_fingerprint, model_file)
    load_weights(built.model, checkpoint, model_file)
    return checkpoint, config, built
