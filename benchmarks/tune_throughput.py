"""Sweep throughput: trials per hour with 1 vs N concurrent trials, same sweep, same Ray instance.

    python benchmarks/tune_throughput.py [--model BPR] [--trials 6] [--epochs 3] [--concurrency 1 2]
        [--gpus-per-trial 0]            # e.g. --gpus-per-trial 1 vs 0.25 with --concurrency 1 4 on a GPU

Every trial trains --epochs epochs of --model on ml-100k (FIFO scheduler, so all trials do the same work) with a
grid over learning rates. Wall time is measured around the whole sweep (Ray already started, no test evaluation).
Prints machine, versions, the load average around each run (other processes on the machine skew the numbers),
trials/hour per setting and the ratio to the first setting.
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUICK = {"load_col": {"inter": ["user_id", "item_id"]}, "train_batch_size": 4096, "eval_batch_size": 409600,
         "embedding_size": 32}


def versions():
    """Machine and library versions, one line."""
    import ray
    import recbole
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()} {cpu}, {os.cpu_count()} CPUs, {gpu}; python {platform.python_version()}, "
            f"torch {torch.__version__}, ray {ray.__version__}, recbole {recbole.__version__}")


def run(args, concurrency, folder, index):
    """One sweep; returns (wall seconds, finished trials, load average before, after)."""
    from recbole_darec.tune import SweepOptions, run_sweep

    rates = [10 ** (-2 - 1.5 * i / max(args.trials - 1, 1)) for i in range(args.trials)]
    space = Path(folder) / "space.yaml"
    space.write_text(yaml.safe_dump({"space": {"learning_rate": {"type": "grid", "values": rates}},
                                     "fixed": {"epochs": args.epochs, "eval_step": 1}}))
    opts = SweepOptions(model=args.model, dataset="ml-100k", space=str(space), scheduler="fifo",
                        max_concurrent=concurrency, cpus_per_trial=args.cpus_per_trial,
                        gpus_per_trial=args.gpus_per_trial, storage_path=str(folder), name=f"run{index}-c{concurrency}",
                        overrides=dict(QUICK), final="none", verbose=0)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    result = run_sweep(opts)
    wall = time.perf_counter() - start
    finished = int((result.table["status"] == "TERMINATED").sum())
    # Ray's time_total_s: a trial's own time from its start to its last report (no scheduling or startup).
    trial_s = sum(r.metrics.get("time_total_s", 0.0) for r in result.result_grid) / max(len(result.result_grid), 1)
    return wall, finished, trial_s, load_before, os.getloadavg()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="BPR")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--gpus-per-trial", type=float, default=0.0)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray (default: all)")
    args = parser.parse_args()

    import ray

    print(versions())
    print(f"sweep: {args.trials} trials x {args.epochs} epochs of {args.model} on ml-100k, "
          f"{args.cpus_per_trial} CPU / {args.gpus_per_trial} GPU per trial")
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="tune_bench_") as folder:
            for index, concurrency in enumerate(args.concurrency):
                wall, finished, trial_s, before, after = run(args, concurrency, folder, index)
                rows.append((concurrency, wall, finished, finished * 3600 / wall, trial_s, before, after))
    finally:
        ray.shutdown()
    print(f"{'concurrent':>10} {'wall s':>8} {'trials':>6} {'trials/h':>9} {'ratio':>6} {'s/trial':>8} "
          f"{'load before/after':>18}")
    base = rows[0][3]
    for concurrency, wall, finished, per_hour, trial_s, before, after in rows:
        print(f"{concurrency:>10} {wall:>8.1f} {finished:>6} {per_hour:>9.0f} {per_hour / base:>6.2f} "
              f"{trial_s:>8.1f} {before:>8.2f} / {after:<8.2f}")
    print("ratio = trials/hour relative to the first setting; s/trial = mean time a trial itself ran. "
          "The load average counts every process on the machine, not only this benchmark's.")


if __name__ == "__main__":
    main()
