"""The one reader of the YAML files a user hands in (config, variants and search-space files), with one error.

A missing file or broken YAML is a :class:`YamlFileError` naming the file (and the line, for bad YAML); what the
content must look like stays with each caller, which checks it and raises its own error.
"""
from pathlib import Path

import yaml

from recbole_darec.cli_errors import UserError

MISSING = "{what} {path} does not exist"
BROKEN = "{path}{problem}"


class YamlFileError(UserError):
    """A YAML file that is missing or not valid YAML; the message names it."""


def yaml_problem(err):
    """`` line N: not valid YAML (problem)`` for a PyYAML error, one line (PyYAML's own message spans 5-7)."""
    where = getattr(err, "problem_mark", None)
    line = f" line {where.line + 1}" if where is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{line}: not valid YAML ({problem})"


def read_yaml_file(path, loader, what, missing=MISSING, broken=BROKEN, error=YamlFileError):
    """The parsed content of a YAML file (``None`` when empty).

    Args:
        path (str | Path): the file.
        loader (type): the PyYAML loader class (``yaml.SafeLoader``, RecBole's config loader, ...).
        what (str): what the file is, for the messages ("config file", "variants file", ...).
        missing (str): the message for a missing file; ``{what}`` and ``{path}`` are filled in.
        broken (str): the message for bad YAML; ``{what}``, ``{path}`` and ``{problem}`` (:func:`yaml_problem`).
        error (type): the :class:`YamlFileError` subclass to raise (one that is also the caller's own error).
    """
    if not Path(path).is_file():
        raise error(missing.format(what=what, path=path))
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh.read(), Loader=loader)
    except yaml.YAMLError as err:
        raise error(broken.format(what=what, path=path, problem=yaml_problem(err))) from None
