"""Command line of ``run_compare.py``: flags -> :class:`CompareOptions` -> :func:`run_comparison`.

Unknown ``--key=value`` arguments are RecBole config overrides for every run (values parsed as YAML, so
``--epochs=5``, ``--learning_rate=1e-3`` and ``--eval_args="{'split': {'RS': [0.8,0.1,0.1]}}"`` work).
"""
import argparse
import shlex
import sys

import yaml

from recbole_darec.report.compare import CompareOptions, run_comparison
from recbole_darec.report.records import RUNS_FILE
from recbole_darec.report.stats import TESTS
from recbole_darec.report.errors import CompareError
from recbole_darec.report.variants import load_variants

DEFAULT_BASE_SEED = 2020  # RecBole's default seed: seed list = 2020, 2021, ...


def _split(text):
    return [part for part in text.replace(",", " ").split() if part]


def parser():
    p = argparse.ArgumentParser(
        prog="run_compare.py",
        description="Train models side by side on one dataset over several seeds; write tables and plots.",
        epilog="Any other --key=value is a RecBole config override for every run (e.g. --epochs=300).")
    p.add_argument("--dataset", required=True, help="dataset name (ml-100k, yelp, amazon-book, ...)")
    p.add_argument("--models", default="", help="comma-separated model names or variant labels, e.g. "
                   "BPR,LightGCN,DaRecLightGCN")
    p.add_argument("--variants", help="YAML file of named config variants (label: {model: ..., key: value})")
    p.add_argument("--seeds", type=int, help="number of seeds: 2020, 2021, ... (default 3; with --report-only: all)")
    p.add_argument("--seed-list", "--seed_list", dest="seed_list", help="explicit seeds, e.g. 2020,2021,2022")
    p.add_argument("--config_files", "--config-files", dest="config_files", default="",
                   help="YAML files for every run, space- or comma-separated")
    p.add_argument("--out", help="output folder (default results/compare-<dataset>)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--parallel", type=int, default=1, help="runs at once in local processes (default 1)")
    mode.add_argument("--ray", action="store_true", help="spread runs as Ray tasks (local or --address)")
    p.add_argument("--address", help="Ray cluster address (auto or HOST:PORT); default: a private local Ray")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray CPUs (and torch threads) per run")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray GPUs per run, fractions allowed")
    p.add_argument("--test", choices=TESTS, default="ttest", help="paired significance test over seeds")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--no-tsne", dest="tsne", action="store_false", help="skip the t-SNE figures")
    p.add_argument("--tsne-max-points", type=int, default=5000, help="users sampled for t-SNE (default 5000)")
    p.add_argument("--report-only", action="store_true", help="no training: rebuild the report from runs.jsonl")
    p.add_argument("--progress-every", type=float, default=60.0, metavar="SECONDS",
                   help="a progress line per run (epoch, validation score, best so far, s/epoch) at most this "
                        "often (default 60; 0: after every evaluation)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress lines")
    return p


def parse_overrides(extra):
    """``['--epochs=5', ...]`` -> ``{'epochs': 5}``; anything else is an error naming the argument."""
    overrides = {}
    for arg in extra:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not sep or not key:
            raise CompareError(f"unrecognised argument '{arg}': config overrides are written --key=value")
        overrides[key] = _value(value)
    return overrides


def _value(text):
    """Number, then YAML (lists, dicts, booleans), then the raw string. Numbers first: YAML reads 1e-3 as text."""
    if not text:
        return ""  # --gpu_id= means "no GPU", not None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def options_from_args(argv):
    """Parse ``argv`` into :class:`CompareOptions` (no validation of names yet)."""
    args, extra = parser().parse_known_args(argv)
    if args.seeds is not None and args.seeds < 1:
        raise CompareError(f"--seeds must be >= 1, got {args.seeds}")
    if args.parallel < 1:
        raise CompareError(f"--parallel must be >= 1, got {args.parallel}")
    if not args.progress_every >= 0:
        raise CompareError(f"--progress-every must be >= 0 seconds, got {args.progress_every}")
    if args.cpus_per_run <= 0 or args.gpus_per_run < 0:
        raise CompareError("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
    try:
        if args.seed_list:
            seeds = [int(s) for s in _split(args.seed_list)]
        elif args.report_only and args.seeds is None:
            seeds = None  # report every seed found in runs.jsonl
        else:
            seeds = [DEFAULT_BASE_SEED + i for i in range(args.seeds or 3)]
    except ValueError:
        raise CompareError(f"--seed-list must be integers, got '{args.seed_list}'") from None
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise CompareError(f"--seed-list repeats a seed: {seeds}")
    return CompareOptions(
        dataset=args.dataset, models=list(dict.fromkeys(_split(args.models))), seeds=seeds, out=args.out,
        config_files=_split(args.config_files), overrides=parse_overrides(extra), parallel=args.parallel,
        ray=args.ray, address=args.address, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
        test=args.test, alpha=args.alpha, tsne=args.tsne, tsne_max_points=args.tsne_max_points,
        report_only=args.report_only, progress_every=args.progress_every if args.progress else None,
        variants=load_variants(args.variants) if args.variants else {})


def main(argv=None):
    """Run a comparison; exit status 2 for bad input, 1 when a run failed, 130 when interrupted, 0 otherwise."""
    argv = sys.argv[1:] if argv is None else list(argv)
    opts = None
    try:
        opts = options_from_args(argv)
        result = run_comparison(opts)
    except CompareError as err:
        print(f"run_compare.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # raised before the report: no table or figure claims the comparison complete
        done = f" (finished runs are in {opts.out_dir / RUNS_FILE})" if opts else ""
        print(f"run_compare.py: error: comparison interrupted{done}; the same command continues it, the cut-off "
              f"run after its last finished epoch: python run_compare.py {shlex.join(argv)}", file=sys.stderr)
        return 130
    return 1 if result["failed"] else 0
