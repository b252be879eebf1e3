"""Exact resume: a run killed (SIGKILL) mid-training and resumed ends like the uninterrupted run -- same per-epoch
losses, validation history and test metrics -- and a checkpoint of another seed or dataset is refused."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_output import result_table

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "run_recbole_darec.py"), "--dataset=ml-100k", "--eval_step=1",
       "--embedding_size=16", "--train_batch_size=4096", "--eval_batch_size=409600", "--stopping_step=10",
       "--semantic_max_length=8", "--semantic_show_progress=False"]
KILL_AT = "epoch 3 training"  # epoch 3 trained, not yet evaluated: the last finished epoch is 2


def _env():
    # One CPU thread: multi-threaded float reductions differ in the last bits from run to run (DaRec's K-means
    # turns that into different clusters), so only single-threaded runs can be compared bit for bit.
    return {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    """A private ml-100k folder (DaRec writes its semantic files there; short encodings keep that quick)."""
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(REPO / "dataset" / "ml-100k", root / "ml-100k",
                    ignore=shutil.ignore_patterns("*.semantic*", "*emb", "*.jsonl", ".*"))
    return f"--data_path={root}"


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


def _last(folder):
    (path,) = (folder / "saved").glob("*.last.pth")
    return torch.load(path, weights_only=True)


# head_interval 7 with 20 steps an epoch: the schedule's phase differs from epoch to epoch, so a resumed run takes the
# uninterrupted run's head steps only if the schedule restarts with every epoch
@pytest.mark.parametrize("model, extra", [("LightGCNBackbone", ()), ("DaRecLightGCN", ()),
                                          ("DaRecLightGCN", ("--head_interval=7",))])
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path, data_path, model, extra):
    args = [f"--model={model}", "--epochs=6", data_path, *extra]
    reference = _run(tmp_path / "straight", *args)
    _killed_run(tmp_path / "killed", *args)
    interrupted = _last(tmp_path / "killed")
    assert interrupted["epoch"] == 2 and not interrupted["finished"]
    (best,) = [p for p in (tmp_path / "killed" / "saved").glob("*.pth") if not p.name.endswith(".last.pth")]
    resumed = _run(tmp_path / "killed", *args, f"--resume_from={best}")
    assert "resuming from epoch 3" in resumed and "epoch 2 training" not in resumed

    straight, again = _last(tmp_path / "straight"), _last(tmp_path / "killed")
    assert list(again["train_loss"]) == list(straight["train_loss"]) == list(range(6))
    assert again["train_loss"] == straight["train_loss"]  # bit for bit, epochs 3-5 recomputed after the kill
    assert again["valid_history"] == straight["valid_history"]
    assert again["best_valid_result"] == straight["best_valid_result"]
    table = result_table(resumed)
    assert table and table == result_table(reference)
    assert "nan" not in resumed.lower().split("test result")[-1] and "best valid : None" not in resumed

    # A finished run resumed: nothing is trained again, the same table comes out.
    (done,) = [p for p in (tmp_path / "straight" / "saved").glob("*.pth") if not p.name.endswith(".last.pth")]
    again_done = _run(tmp_path / "straight", *args, f"--resume_from={done}")
    assert "training [" not in again_done and result_table(again_done) == result_table(reference)


def test_checkpoint_of_another_seed_or_dataset_is_refused(tmp_path):
    _run(tmp_path / "a", "--model=LightGCNBackbone", "--epochs=1")  # on the shipped ml-100k
    (best,) = [p for p in (tmp_path / "a" / "saved").glob("*.pth") if not p.name.endswith(".last.pth")]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = subprocess.run(RUN + ["--model=LightGCNBackbone", "--epochs=1", f"--resume_from={best}", "--seed=7"],
                         cwd=tmp_path / "a", env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "seed 2020" in line and "seed 7" in line and best.name[:-4] in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
