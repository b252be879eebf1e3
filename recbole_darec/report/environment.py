"""Where and with what a run happened: machine, library versions, git commit."""
import contextlib
import os
import platform
import subprocess
from pathlib import Path


def machine_info():
    """Where the numbers were measured: OS, CPU, core count and the GPU (if one was used)."""
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(), "gpu": gpu}


def versions():
    """Library versions and the project's git commit (dirty trees say so)."""
    import numpy
    import recbole
    import scipy
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "recbole": recbole.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__}
    root = Path(__file__).resolve().parents[2]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        info["recbole_darec_commit"] = commit or None
    return info
