"""Exact resume: a run killed (SIGKILL) mid-training and resumed ends like the uninterrupted run -- same per-epoch
losses, validation history and test metrics -- and a checkpoint of another seed or dataset is refused."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "run_recbole_darec.py"), "--dataset=ml-100k", "--eval_step=1",
       "--embedding_size=16", "--train_batch_size=4096", "--eval_batch_size=409600", "--stopping_step=10"]
KILL_AT = "epoch 3 training"  # epoch 3 trained, not yet evaluated: the last finished epoch is 2


def _env():
    return {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _run(folder, *extra):
    folder.mkdir(exist_ok=True)
    out = subprocess.run(RUN + list(extra), cwd=folder, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:]
    return out.stdout  # RecBole logs to stderr: both streams


def _killed_run(folder, *extra):
    """Start a run and SIGKILL it as soon as it logs KILL_AT."""
    folder.mkdir(exist_ok=True)
    proc = subprocess.Popen(RUN + list(extra), cwd=folder, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if KILL_AT in line:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def _table(stdout):
    """The closing valid/test table: {metric: (valid, test)}."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and "@" in parts[0]:
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    return rows


def _last(folder):
    (path,) = (folder / "saved").glob("*.last.pth")
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("model", ["LightGCNBackbone"])
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path, model):
    reference = _run(tmp_path / "straight", f"--model={model}", "--epochs=6")
    _killed_run(tmp_path / "killed", f"--model={model}", "--epochs=6")
    interrupted = _last(tmp_path / "killed")
    assert interrupted["epoch"] == 2 and not interrupted["finished"]
    (best,) = [p for p in (tmp_path / "killed" / "saved").glob("*.pth") if not p.name.endswith(".last.pth")]
    resumed = _run(tmp_path / "killed", f"--model={model}", "--epochs=6", f"--resume_from={best}")
    assert "resuming from epoch 3" in resumed

    # Two fresh CPU runs already differ in the last bits (multi-threaded reductions): losses agree to 1e-6
    # relative (the logged 4 decimals are identical), metrics exactly at RecBole's 4 decimals.
    straight, again = _last(tmp_path / "straight"), _last(tmp_path / "killed")
    assert sorted(again["train_loss"]) == sorted(straight["train_loss"]) == list(range(6))
    for epoch, loss in straight["train_loss"].items():
        assert again["train_loss"][epoch] == pytest.approx(loss, rel=1e-6), epoch
        assert f"loss: {loss:.4f}" in resumed or epoch < 3
    assert [(e, r) for e, _, r in again["valid_history"]] == [(e, r) for e, _, r in straight["valid_history"]]
    assert again["best_valid_result"] == straight["best_valid_result"]
    table = _table(resumed)
    assert table and table == _table(reference)
    assert "nan" not in resumed.lower().split("test result")[-1] and "best valid : None" not in resumed


def test_checkpoint_of_another_seed_or_dataset_is_refused(tmp_path):
    _run(tmp_path / "a", "--model=LightGCNBackbone", "--epochs=1")
    (best,) = [p for p in (tmp_path / "a" / "saved").glob("*.pth") if not p.name.endswith(".last.pth")]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = subprocess.run(RUN + ["--model=LightGCNBackbone", "--epochs=1", f"--resume_from={best}", "--seed=7"],
                         cwd=tmp_path / "a", env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "seed 2020" in line and "seed 7" in line and best.name[:-4] in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
