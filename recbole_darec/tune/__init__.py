"""Ray Tune sweeps for any model the plugin runs: YAML search spaces, per-evaluation validation reports (ASHA can
stop bad trials early), retries and resume, fractional GPUs or CPU-only trials, an existing cluster via ``address``,
and one test evaluation of the best configuration afterwards. Entry point: ``python run_hyper.py --help``.

Ray is imported only when a sweep runs, so space validation and ``import recbole_darec.tune`` stay cheap.
"""
from recbole_darec.tune.runner import SweepError, SweepOptions, SweepResult, prepare, run_sweep
from recbole_darec.tune.space import SearchSpace, SearchSpaceError, load_space, parse_space

__all__ = ["SweepOptions", "SweepResult", "SweepError", "run_sweep", "prepare",
           "SearchSpace", "SearchSpaceError", "load_space", "parse_space"]
