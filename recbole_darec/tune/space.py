"""Search spaces in YAML: parsing and validation (no Ray needed), then conversion to Ray Tune domains.

A space file has a ``space`` mapping (one entry per searched config key) and an optional ``fixed`` mapping (plain
config values for every trial)::

    space:
      learning_rate: {type: loguniform, lower: 1.0e-4, upper: 1.0e-2}
      n_layers:      {type: choice, values: [1, 2, 3]}
      darec_k:       {type: randint, lower: 2, upper: 16}     # both bounds inclusive
      reg_weight:    {type: uniform, lower: 0.0, upper: 0.1, q: 0.01}
      embedding_size: {type: grid, values: [32, 64]}          # every value, crossed with the samples
    fixed:
      epochs: 50

Types: ``choice`` / ``grid`` (``values``), ``uniform`` / ``loguniform`` (``lower``, ``upper``, optional ``q``),
``randint`` (inclusive integer ``lower``, ``upper``). With ``--search grid`` every parameter must be discrete:
``choice``/``grid``/``randint`` enumerate their values, ``uniform``/``loguniform`` need ``points: N`` (evenly or
log-evenly spaced). Every mistake is reported as :class:`SearchSpaceError` naming the file and the parameter.
"""
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recbole_darec.cli_errors import UserError
from recbole_darec.yaml_files import YamlFileError, read_yaml_file

PARAM_TYPES = {
    # type: (required keys, optional keys)
    "choice": ({"values"}, set()),
    "grid": ({"values"}, set()),
    "uniform": ({"lower", "upper"}, {"q", "points"}),
    "loguniform": ({"lower", "upper"}, {"q", "points"}),
    "randint": ({"lower", "upper"}, {"points"}),
}
SEARCH_MODES = ("random", "grid", "optuna")
TOP_LEVEL_KEYS = {"space", "fixed"}
# Set by the sweep itself for every trial; searching them would break the run, not tune it.
RESERVED_KEYS = {"model", "dataset", "checkpoint_dir", "gpu_id", "data_path", "resume_from"}
MAX_GRID_INTS = 64  # a randint enumerated for grid search beyond this is almost surely a mistake


class SearchSpaceError(UserError):
    """A search-space file or spec that cannot be searched; the message names the file and parameter."""


class SpaceFileError(YamlFileError, SearchSpaceError):
    """A missing or broken search-space file: a YAML file error, and a search-space error for the sweep's CLI."""


@dataclass
class Param:
    """One searched config key."""

    name: str
    type: str
    values: list = None
    lower: float = None
    upper: float = None
    q: float = None
    points: int = None

    @property
    def log_scale(self):
        """Whether plots should use a log x-axis for this parameter."""
        if self.type == "loguniform":
            return True
        numbers = self.numeric_values()
        return bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) >= 16

    def numeric_values(self):
        """The listed values when they are all numbers (for plots), else None."""
        if self.values is None:
            return None
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values):
            return list(self.values)
        return None

    @property
    def is_numeric(self):
        return self.type in ("uniform", "loguniform", "randint") or self.numeric_values() is not None

    def grid_values(self):
        """The values a grid search walks through."""
        if self.values is not None:
            return list(self.values)
        if self.type == "randint":
            if self.points:
                step = (self.upper - self.lower) / max(self.points - 1, 1)
                return sorted({int(round(self.lower + i * step)) for i in range(self.points)})
            return list(range(int(self.lower), int(self.upper) + 1))
        if self.points == 1:
            return [self.lower]
        if self.type == "uniform":
            step = (self.upper - self.lower) / (self.points - 1)
            return [self.lower + i * step for i in range(self.points)]
        ratio = (self.upper / self.lower) ** (1.0 / (self.points - 1))
        return [self.lower * ratio**i for i in range(self.points)]


@dataclass
class SearchSpace:
    """A validated search space: searched parameters plus fixed config values."""

    params: dict
    fixed: dict = field(default_factory=dict)
    source: str = "<dict>"

    def to_tune(self, search="random"):
        """Ray Tune ``param_space`` for the given search mode (``random``, ``grid`` or ``optuna``)."""
        from ray import tune  # lazy: ray, only when a sweep starts (validating a space needs none)

        space = {}
        for name, p in self.params.items():
            if search == "grid" or p.type == "grid":
                space[name] = tune.grid_search(p.grid_values())
            elif p.type == "choice":
                space[name] = tune.choice(list(p.values))
            elif p.type == "randint":
                space[name] = tune.randint(int(p.lower), int(p.upper) + 1)  # Ray's upper bound is exclusive
            elif p.type == "uniform":
                space[name] = tune.quniform(p.lower, p.upper, p.q) if p.q else tune.uniform(p.lower, p.upper)
            else:
                space[name] = tune.qloguniform(p.lower, p.upper, p.q) if p.q else tune.loguniform(p.lower, p.upper)
        return space

    def grid_size(self):
        """Number of grid points (1 when nothing is a grid)."""
        return math.prod(len(p.values) for p in self.params.values() if p.type == "grid") or 1


def _yaml_loader():
    # PyYAML reads ``1e-4`` (no dot) as a string; researchers write it that way, so read it as a float.
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$|^[-+]?(?:\d+\.\d*|\.\d+)$"),
        list("-+0123456789."),
    )
    return Loader


def load_space(path, search="random"):
    """Read and validate a search-space YAML file.

    Args:
        path (str or Path): the YAML file.
        search (str): ``random``, ``grid`` or ``optuna``; grid and optuna add their own checks.

    Returns:
        SearchSpace

    Raises:
        SearchSpaceError: the file is missing, not YAML, or any parameter is invalid.
    """
    path = Path(path)
    data = read_yaml_file(path, _yaml_loader(), "search space file", error=SpaceFileError)
    return parse_space(data, search=search, source=str(path))


def parse_space(data, search="random", source="<dict>"):
    """Validate a search space given as a dict (the YAML's content); see :func:`load_space`."""
    if search not in SEARCH_MODES:
        raise SearchSpaceError(f"unknown search mode '{search}': use one of {', '.join(SEARCH_MODES)}")
    if not isinstance(data, dict) or "space" not in data:
        raise SearchSpaceError(
            f"{source}: expected a mapping with a 'space' section (and optionally 'fixed'), e.g.\n"
            "space:\n  learning_rate: {type: loguniform, lower: 1.0e-4, upper: 1.0e-2}"
        )
    unknown = set(data) - TOP_LEVEL_KEYS
    if unknown:
        raise SearchSpaceError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(sorted(TOP_LEVEL_KEYS))} (searched parameters go under 'space')"
        )
    raw, fixed = data["space"], data.get("fixed") or {}
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError(f"{source}: 'space' must map at least one config key to a parameter spec")
    if not isinstance(fixed, dict):
        raise SearchSpaceError(f"{source}: 'fixed' must map config keys to values")
    params = {str(name): _parse_param(str(name), spec, source) for name, spec in raw.items()}
    for name in params:
        if name in RESERVED_KEYS:
            raise SearchSpaceError(f"{source}: '{name}' is set by the sweep itself and cannot be searched")
        if name in fixed:
            raise SearchSpaceError(f"{source}: '{name}' is both searched (space) and fixed (fixed); keep one")
    bad_fixed = RESERVED_KEYS.intersection(fixed) - {"data_path"}
    if bad_fixed:
        raise SearchSpaceError(f"{source}: {', '.join(sorted(bad_fixed))} cannot be fixed in a search space")
    _check_mode(params, search, source)
    return SearchSpace(params=params, fixed=dict(fixed), source=source)


def _number(value, what, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):  # e.g. '1e-3' quoted in YAML
            try:
                return float(value)
            except ValueError:
                pass
        raise SearchSpaceError(f"{where}: '{what}' must be a number, got {value!r}")
    if not math.isfinite(value):
        raise SearchSpaceError(f"{where}: '{what}' must be finite, got {value!r}")
    return value


def _parse_param(name, spec, source):
    where = f"{source}: parameter '{name}'"
    if not isinstance(spec, dict):
        raise SearchSpaceError(
            f"{where}: expected a mapping like {{type: choice, values: [...]}}, got {spec!r} "
            "(constant values belong in the 'fixed' section)"
        )
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise SearchSpaceError(
            f"{where}: unknown type {kind!r}; use one of {', '.join(PARAM_TYPES)}"
            if kind is not None else f"{where}: missing 'type' (one of {', '.join(PARAM_TYPES)})"
        )
    required, optional = PARAM_TYPES[kind]
    unknown = set(spec) - required - optional - {"type"}
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise SearchSpaceError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                               f"for type {kind} (allowed: {allowed})")
    missing = required - set(spec)
    if missing:
        raise SearchSpaceError(f"{where}: type {kind} needs {', '.join(sorted(missing))}")
    if kind in ("choice", "grid"):
        values = spec["values"]
        if not isinstance(values, list):
            raise SearchSpaceError(f"{where}: 'values' must be a list, got {values!r}")
        if not values:
            raise SearchSpaceError(f"{where}: 'values' is empty; give at least one value")
        return Param(name, kind, values=list(values))
    return _parse_range(name, kind, spec, where)


def _parse_range(name, kind, spec, where):
    lower, upper = _number(spec["lower"], "lower", where), _number(spec["upper"], "upper", where)
    if kind == "randint":
        if lower != int(lower) or upper != int(upper):
            raise SearchSpaceError(f"{where}: randint bounds must be integers, got lower={lower}, upper={upper}")
        lower, upper = int(lower), int(upper)
        if lower > upper:
            raise SearchSpaceError(f"{where}: lower ({lower}) > upper ({upper})")
    elif lower >= upper:
        raise SearchSpaceError(f"{where}: lower ({lower}) must be below upper ({upper})")
    if kind == "loguniform" and lower <= 0:
        raise SearchSpaceError(f"{where}: loguniform bounds must be > 0, got lower={lower}, upper={upper}")
    q = spec.get("q")
    if q is not None and _number(q, "q", where) <= 0:
        raise SearchSpaceError(f"{where}: 'q' must be > 0, got {q}")
    points = spec.get("points")
    if points is not None and (isinstance(points, bool) or not isinstance(points, int) or points < 1):
        raise SearchSpaceError(f"{where}: 'points' must be a positive integer, got {points!r}")
    return Param(name, kind, lower=lower, upper=upper, q=q, points=points)


def _check_mode(params, search, source):
    for p in params.values():
        where = f"{source}: parameter '{p.name}'"
        if search == "grid" and p.type in ("uniform", "loguniform") and not p.points:
            raise SearchSpaceError(f"{where}: grid search needs 'points: N' for a {p.type} range "
                                   "(or use --search random)")
        if search == "grid" and p.type == "randint" and not p.points and p.upper - p.lower + 1 > MAX_GRID_INTS:
            raise SearchSpaceError(f"{where}: {p.upper - p.lower + 1} integers in the grid; add 'points: N'")
        if search == "optuna" and p.type == "grid":
            raise SearchSpaceError(f"{where}: optuna search does not take 'grid' parameters; use 'choice'")
