"""Command line of ``run_hyper.py``; RecBole-style ``--key=value`` arguments become config overrides."""
import argparse
import signal
import sys

from recbole_darec.tune.runner import FINAL_MODES, SCHEDULERS, SweepError, SweepOptions, run_sweep
from recbole_darec.tune.space import SEARCH_MODES, SearchSpaceError

USAGE = """Hyperparameter sweeps with Ray Tune.

    python run_hyper.py --model=LightGCN --dataset=ml-100k --space=hyper/lightgcn.yaml --num-samples=20
    python run_hyper.py --model=DaRecLightGCN --dataset=yelp --space=hyper/darec.yaml --gpus-per-trial=0.25
    python run_hyper.py --resume --name=EXP            # continue an interrupted sweep

Any other --key=value is a RecBole config override for every trial (e.g. --epochs=50 --eval_step=2).
"""


def build_parser():
    """The argument parser (flags with dashes; underscore spellings are accepted too)."""
    p = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)

    def flag(name, **kw):
        p.add_argument(f"--{name}", *([f"--{name.replace('-', '_')}"] if "-" in name else []), **kw)

    flag("model", help="model name (plugin or RecBole zoo)")
    flag("dataset", help="dataset name")
    flag("space", help="search-space YAML (see hyper/)")
    flag("num-samples", type=int, help="trials to sample (grid: passes over the grid); default 10, 1 if all grid")
    flag("gpus-per-trial", type=float, help="GPU share per trial, e.g. 0.25; 0 = CPU-only; default 1 if GPUs")
    flag("cpus-per-trial", type=float, default=1.0, help="CPUs per trial (also torch threads); default 1")
    flag("max-concurrent", type=int, help="at most this many trials at once")
    flag("scheduler", choices=SCHEDULERS, default="asha", help="asha (early stopping) or fifo")
    flag("search", choices=SEARCH_MODES, default="random", help="random, grid, or optuna (needs optuna)")
    flag("address", help="join a Ray cluster: auto or HOST:PORT (default: a private local Ray)")
    flag("resume", action="store_true", help="continue the experiment --name (finished trials are kept)")
    flag("name", help="experiment name (default MODEL-DATASET-TIME)")
    flag("storage-path", default="ray_results", help="experiments folder; shared storage on a cluster")
    flag("max-failures", type=int, default=2, help="retries per failed trial (-1: forever); default 2")
    flag("config_files", help="space-separated RecBole YAML config files")
    flag("grace-period", type=int, default=1, help="ASHA: evaluations before a trial may be stopped")
    flag("reduction-factor", type=int, default=2, help="ASHA: keep the top 1/N at each rung")
    flag("final", choices=FINAL_MODES, default="reload",
         help="test the best trial's saved model (reload), retrain its config (retrain), or skip (none)")
    flag("num-cpus", type=int, help="CPUs of the private local Ray (default: all)")
    flag("allow-unknown-params", action="store_true", help="search keys the model's config does not define")
    flag("verbose", type=int, default=1, help="Ray Tune verbosity 0-3")
    return p


def parse_args(argv=None):
    """Parse ``argv`` into :class:`SweepOptions`; unknown ``--key=value`` pairs become overrides."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    overrides = {}
    for arg in rest:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognised argument {arg!r} (config overrides are written --key=value)")
        key, value = arg[2:].split("=", 1)
        overrides[key] = value
    values = vars(args)
    values["config_files"] = values["config_files"].split() if values["config_files"] else None
    return SweepOptions(**values, overrides=overrides)


def main(argv=None):
    """Run the sweep; configuration mistakes exit with status 2 and one clear line, before Ray starts; an
    interrupted sweep exits 130 (Ctrl+C) or 143 (SIGTERM) with one line saying how to resume it."""
    opts = parse_args(argv)
    try:
        result = run_sweep(opts)
    except (SweepError, SearchSpaceError) as err:
        print(f"run_hyper.py: error: {err}", file=sys.stderr)
        return 2
    if result.interrupted:  # nothing final was written; sweep.json says "interrupted"
        print(f"run_hyper.py: error: sweep interrupted, resume with {result.resume_args}", file=sys.stderr)
        return 128 + (result.stop_signal or signal.SIGINT)  # the shell's code for death by that signal: 130, 143
    return 0
