"""Where and with what a run happened: machine, library versions, git commit."""
import contextlib
import os
import platform
import subprocess
from pathlib import Path

import numpy
import recbole
import scipy
import torch


def machine_info():
    """Where the numbers were measured: OS, CPU, core count and the GPU (if one was used)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "cpu": cpu_name(), "cpus": os.cpu_count(), "gpu": gpu}


# /proc/cpuinfo flag -> label, widest first
VECTOR_ISAS = (("avx512f", "avx512"), ("avx2", "avx2"), ("sse4_2", "sse4.2"))


def cpu_name():
    """The CPU's model name with its family, model and widest vector ISA, e.g. ``AMD EPYC (family 25, model 17,
    avx512)``: hosts sold under one name differ (a GEMM ran at half the speed on another EPYC generation)."""
    fields = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    isa = next((label for flag, label in VECTOR_ISAS if flag in flags), None)
    details = [f"family {fields['cpu family']}" if "cpu family" in fields else None,
               f"model {fields['model']}" if "model" in fields else None, isa]
    details = [d for d in details if d]
    return f"{name} ({', '.join(details)})" if details else name


def versions():
    """Library versions and the project's git commit (dirty trees say so)."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "recbole": recbole.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__}
    root = Path(__file__).resolve().parents[2]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        info["recbole_darec_commit"] = commit or None
    return info
