"""Train-and-evaluate entry points, shaped like RecBole's ``run_recbole`` / ``load_data_and_model``.

``recbole.quick_start`` is deliberately not imported: it imports ray at module load and its
``objective_function`` reports *test* metrics to Ray Tune. Nothing here reports to Ray; tuning code passes an
``epoch_callback`` and reports validation metrics itself.
"""
import sys
from logging import getLogger

from recbole.utils import get_environment, init_logger, set_color

from recbole_darec.checkpoints import check_belongs, check_same_settings, load_checkpoint, resume_source
from recbole_darec.config import Config
from recbole_darec.console import FILE_ONLY, console_held_until_built
from recbole_darec.data.atomic_check import check_atomic_headers
from recbole_darec.failed_run import LOG_ROOT, TENSORBOARD_ROOT, discard_outputs_on_user_error
from recbole_darec.single_run import reload, run_once
from recbole_darec.text_tables import format_result_table
from recbole_darec.writable import check_writable


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
        init_logger(config)
        logger = getLogger()
        with console_held_until_built() as release_console:  # a check on the loaded data ends in one line
            logger.info(sys.argv, extra=FILE_ONLY)
            logger.info(config, extra=FILE_ONLY)  # the config dump: the log file only

            def before_fit(trainer):
                run.trainer = trainer
                release_console()

            _, result, _ = run_once(config, saved=saved, verbose=True, epoch_callback=epoch_callback,
                                    before_fit=before_fit)
    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {result['best_valid_result']}")
    logger.info(set_color("test result", "yellow") + f": {result['test_result']}")
    logger.info("\n" + format_result_table(result["best_valid_result"], result["test_result"]))
    return result


def preflight(config):
    """Checks that need no dataset load: the folders the run writes (RecBole's cwd-relative log/ and
    log_tensorboard/, checkpoint_dir), the dataset's atomic-file headers and the checkpoint to resume from."""
    here = "RecBole writes it in the working folder: run from a writable folder"
    check_writable(LOG_ROOT, "log folder", here)
    check_writable(TENSORBOARD_ROOT, "TensorBoard folder", here)
    check_writable(config["checkpoint_dir"], "checkpoint_dir", "set --checkpoint_dir to a writable folder")
    check_atomic_headers(config)
    if config["resume_from"]:
        path = resume_source(str(config["resume_from"]))
        checkpoint = load_checkpoint(path)
        check_belongs(checkpoint, config, None, path)
        check_same_settings(checkpoint, config, path)  # said again in the log once the run continues


def load_data_and_model(model_file):
    """Rebuild config, model (with its saved weights), dataset and dataloaders from a plugin checkpoint
    (:func:`recbole_darec.single_run.reload`)."""
    _, config, (dataset, (train_data, valid_data, test_data), model, _) = reload(model_file)
    return config, model, dataset, train_data, valid_data, test_data
