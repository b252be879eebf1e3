"""Shared bits of the benchmark scripts (and tests/test_cuda.py): the machine/version header, a repeat timer and a
training loader cut short."""
import os
import platform
import statistics
import sys
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recbole_darec.report.environment import cpu_name  # noqa: E402  (after the path set-up above)


def environment_header():
    """One block naming the machine and the versions that decide the numbers."""
    import numpy
    import recbole
    import scipy
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        f"machine: {platform.platform()} | cpu: {cpu_name()} x{os.cpu_count()} "
        f"| torch threads: {torch.get_num_threads()} | gpu: {device}",
        f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"python {platform.python_version()} | torch {torch.__version__} | recbole {recbole.__version__} "
        f"| numpy {numpy.__version__} | scipy {scipy.__version__}",
    ]
    return "\n".join(lines)


def sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, repeats, device="cpu", warmup=True):
    """Median and min wall seconds of ``repeats`` calls of ``fn`` (after one warm-up call unless ``warmup=False``)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def round_robin(calls, repeats, device="cpu"):
    """Wall seconds of every call in ``calls`` (label -> function of no argument), ``repeats`` rounds in which each
    runs once, so load changes on a shared machine hit every variant alike: label -> list of seconds."""
    seconds = {label: [] for label in calls}
    for _ in range(repeats):
        for label, fn in calls.items():
            seconds[label].append(timed(fn, 1, device, warmup=False)[0])
    return seconds


class FirstBatches:
    """A training loader cut to its first ``count`` batches, for short real ``trainer._train_epoch`` calls (device
    checks, benchmarks); every other attribute is the loader's."""

    def __init__(self, loader, count):
        self.loader, self.count = loader, count

    def __iter__(self):
        return islice(iter(self.loader), self.count)

    def __len__(self):
        return self.count

    def __getattr__(self, name):
        return getattr(self.loader, name)
