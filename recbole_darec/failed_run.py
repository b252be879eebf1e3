"""A run that stops on a user error leaves nothing behind: its log file, TensorBoard folder and the empty output
folders it created are removed (the error line says everything the log would have)."""
import contextlib
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

from recbole_darec.cli_errors import UserError

LOG_ROOT, TENSORBOARD_ROOT = Path("log"), Path("log_tensorboard")  # RecBole's fixed, cwd-relative folders


def _log_files():
    return {h.baseFilename: h for h in logging.getLogger().handlers if hasattr(h, "baseFilename")}


@contextlib.contextmanager
def discard_outputs_on_user_error(config):
    """Yield a namespace whose ``trainer`` the run sets once built; on a user error, undo its outputs."""
    folders = [LOG_ROOT / str(config["model"]), LOG_ROOT, TENSORBOARD_ROOT, Path(config["checkpoint_dir"])]
    existed = {folder: folder.exists() for folder in folders}
    logs_before = set(_log_files())
    model_logs = LOG_ROOT / str(config["model"])
    files_before = set(model_logs.iterdir()) if model_logs.is_dir() else set()
    run = SimpleNamespace(trainer=None)
    try:
        yield run
    except (UserError, FileNotFoundError):  # the two kinds of user error a CLI reports in one line
        for name, handler in _log_files().items():
            if name not in logs_before:
                logging.getLogger().removeHandler(handler)
                handler.close()
                Path(name).unlink(missing_ok=True)
        # RecBole's logging.basicConfig attaches nothing when the root logger already has handlers (embedding
        # applications, pytest), but its FileHandler has created the file all the same.
        if model_logs.is_dir():
            for path in set(model_logs.iterdir()) - files_before:
                if path.name.startswith(f"{config['model']}-{config['dataset']}-") and path.suffix == ".log":
                    path.unlink(missing_ok=True)
        board = getattr(run.trainer, "tensorboard", None)
        if board is not None:
            board.close()
            shutil.rmtree(board.log_dir, ignore_errors=True)
        for folder in folders:  # children first
            if not existed[folder] and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
