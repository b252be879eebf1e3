"""A dataset's atomic-file headers checked before RecBole reads them (its own error is an unpacking traceback).

Every column of a RecBole atomic file header is ``name:type`` with type token, token_seq, float or float_seq.
"""
from pathlib import Path

from recbole.data import create_dataset
from recbole.utils import FeatureType

from recbole_darec.cli_errors import UserError

SUFFIXES = ("inter", "user", "item", "useremb", "itememb")
TYPES = {t.value for t in FeatureType}


def _atomic_files(folder, dataset):
    for path in sorted(Path(folder).glob(f"{dataset}*")):
        suffix = path.name[len(dataset):].lstrip(".").split(".")[-1]
        if path.is_file() and suffix in SUFFIXES:
            yield path


def check_atomic_headers(config):
    """Raise :class:`UserError` naming the file and column of the first malformed header."""
    folder, sep = Path(config["data_path"]), config["field_separator"] or "\t"
    if not folder.is_dir():
        return  # the Config's own dataset check reports a missing folder
    for path in _atomic_files(folder, config["dataset"]):
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().rstrip("\r\n")
        if not header:
            raise UserError(f"dataset file {path} is empty: its first line must be a header of name:type columns")
        for column in header.split(sep):
            name, colon, kind = column.partition(":")
            if not colon or not name or kind not in TYPES:
                raise UserError(f"dataset file {path}: header column {column!r} is not name:type (type one of "
                                f"{', '.join(sorted(TYPES))}, columns separated by a tab), e.g. user_id:token")


def load_dataset(config):
    """RecBole's ``create_dataset`` after the header check."""
    check_atomic_headers(config)
    return create_dataset(config)
