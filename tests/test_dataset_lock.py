"""One lock on a dataset folder's generated files, taken by the semantic CLI and by training runs alike.

Real subprocesses on a private copy of ml-100k. Short encodings (``semantic_max_length=8``) keep it quick.
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import recbole_darec  # noqa: F401  (compat shims)
from recbole_darec.dataset_lock import folder_lock

REPO = Path(__file__).resolve().parents[1]
FAST = "--semantic_max_length=8"


def _env():
    return {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # two processes


def _start(cmd, cwd):
    return subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_semantic_cli_and_training_take_turns(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(REPO / "dataset" / "ml-100k", data / "ml-100k",
                    ignore=shutil.ignore_patterns("*.semantic*", "*emb", "*.jsonl", ".*"))
    folder = data / "ml-100k"
    shipped = sorted(p.name for p in folder.iterdir())
    train = [sys.executable, str(REPO / "run_recbole_darec.py"), "--model=DaRecLightGCN", "--dataset=ml-100k",
             f"--data_path={data}", "--epochs=1", "--embedding_size=16", "--train_batch_size=4096",
             "--eval_batch_size=409600", "--state=WARNING", "--semantic_show_progress=False", FAST]
    cli = [sys.executable, "-m", "recbole_darec.semantic", "--dataset=ml-100k", f"--data_path={data}", "--seed=7",
           FAST, "--semantic_show_progress=False"]
    with folder_lock(folder):  # both must wait for the holder: nothing is written meanwhile
        procs = [_start(train, tmp_path), _start(cli, tmp_path)]
        time.sleep(15)
        assert all(p.poll() is None for p in procs), [p.communicate()[0][-2000:] for p in procs]
        assert sorted(p.name for p in folder.iterdir()) == shipped
    outputs = [p.communicate(timeout=900)[0] for p in procs]  # released: they race each other now
    assert [p.returncode for p in procs] == [0, 0], [o[-3000:] for o in outputs]
    assert list((tmp_path / "saved").glob("DaRecLightGCN-*.pth"))  # the training run finished and saved
    assert not [p.name for p in folder.iterdir() if "lock" in p.name]  # no lock file, ever
