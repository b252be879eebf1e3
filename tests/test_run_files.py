"""Every run owns its files, and a checkpoint is resumed only with the settings it was trained with.

Two runs of one model started in the same second from one folder used to write the same ``saved/<Model>-<time>.pth``
and each tested (and would resume) the other's weights. The race here is made certain: both processes run with
RecBole's clock frozen at one second (the test's own wrapper), so the names can differ only by the run's own id.
"""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_output import result_table

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--model=LightGCNBackbone", "--dataset=ml-100k", "--embedding_size=16", "--train_batch_size=4096",
          "--eval_batch_size=409600", "--eval_step=1", "--state=INFO", "--show_progress=False"]
LOADING = "Loading model structure and parameters from "

# Runs run_recbole_darec.py with every module's view of RecBole's clock frozen at one second.
FROZEN_CLOCK = """
import runpy, sys
import recbole_darec  # noqa: F401  (the plugin and RecBole's modules, as the CLI loads them)
import recbole.utils.utils as recbole_utils
real = recbole_utils.get_local_time
for module in list(sys.modules.values()):
    if getattr(module, "get_local_time", None) is real:
        module.get_local_time = lambda: "Dec-07-2026_12-00-00"
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _env():
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _cli(*args, frozen=False):
    script = [sys.executable, "-c", FROZEN_CLOCK] if frozen else [sys.executable]
    return script + [str(REPO / "run_recbole_darec.py"), *COMMON, *args]


def _tree(folder):
    """Every file under ``folder`` with its bytes' sha and mtime: what 'nothing written or changed' compares."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_runs_started_in_the_same_second_each_test_their_own_weights(tmp_path):
    settings = {"a": ["--seed=1", "--learning_rate=0.01"], "b": ["--seed=2", "--learning_rate=0.0005"]}
    procs = {name: subprocess.Popen(_cli("--epochs=2", *args, frozen=True), cwd=tmp_path, env=_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name, args in settings.items()}
    outs = {name: proc.communicate(timeout=600)[0] for name, proc in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, outs[name][-3000:]
    tested = {name: next(line.split(LOADING)[1].strip() for line in out.splitlines() if LOADING in line)
              for name, out in outs.items()}
    assert tested["a"] != tested["b"]  # with RecBole's names both were saved/LightGCNBackbone-<same second>.pth
    assert all("Dec-07-2026_12-00-00" in path for path in tested.values())  # the clock really was frozen
    assert len(list((tmp_path / "saved").glob("*.last.pth"))) == 2
    assert len(list((tmp_path / "log" / "LightGCNBackbone").glob("*.log"))) == 2

    from recbole_darec import load_data_and_model
    from recbole_darec.trainer import get_plugin_trainer

    for name, path in tested.items():
        checkpoint = torch.load(tmp_path / path, weights_only=True)
        assert checkpoint["seed"] == int(settings[name][0].split("=")[1])
        assert checkpoint["settings"]["learning_rate"] == float(settings[name][1].split("=")[1])
        # What the run reported on test is what its own checkpoint scores.
        config, model, _, _, _, test_data = load_data_and_model(str(tmp_path / path))
        trainer = get_plugin_trainer(config)(config, model)
        result = trainer.evaluate(test_data, load_best_model=False)
        reported = {metric: test for metric, (_, test) in result_table(outs[name]).items()}
        assert reported and all(abs(result[metric] - value) < 1e-4 for metric, value in reported.items())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A two-epoch LightGCNBackbone run on the shipped ml-100k: (folder, best checkpoint, last checkpoint)."""
    folder = tmp_path_factory.mktemp("run")
    out = subprocess.run(_cli("--epochs=2"), cwd=folder, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (last,) = (folder / "saved").glob("*.last.pth")
    (best,) = [p for p in (folder / "saved").glob("*.pth") if p != last]
    return folder, best, last


@pytest.mark.parametrize("change, culprit", [
    ("--learning_rate=0.01", "learning_rate: 0.001 -> 0.01"),
    ("--n_layers=3", "n_layers: 2 -> 3"),
    ("--data_path=OTHER", "data_path: "),
])
def test_resume_with_other_settings_is_refused_naming_each_key(tmp_path, finished_run, change, culprit):
    folder, best, _ = finished_run
    if "OTHER" in change:  # the same dataset copied to another folder: a different data folder all the same
        shutil.copytree(REPO / "dataset" / "ml-100k", tmp_path / "ml-100k",
                        ignore=shutil.ignore_patterns("*.semantic*", "*emb", "*.jsonl", ".*"))
        change = f"--data_path={tmp_path}"
    before = _tree(folder)
    out = subprocess.run(_cli("--epochs=2", change, f"--resume_from={best}"), cwd=folder, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert culprit in line and best.name[:-len(".pth")] in line, line
    assert _tree(folder) == before  # nothing written or changed


def test_resume_allows_more_epochs_and_says_so(tmp_path, finished_run):
    folder, best, last = finished_run
    work = tmp_path / "copy"
    shutil.copytree(folder / "saved", work)
    out = subprocess.run(_cli("--epochs=3", f"--resume_from={work / best.name}"), cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "settings changed on purpose: epochs: 2 -> 3" in out.stderr
    assert "epoch 2 training" in out.stderr and "epoch 1 training" not in out.stderr  # continued, not restarted
    assert torch.load(work / last.name, weights_only=True)["epoch"] == 2


def test_a_renamed_checkpoint_pair_is_found_by_its_content(tmp_path, finished_run):
    folder, best, last = finished_run
    renamed = tmp_path / "kept"
    renamed.mkdir()
    shutil.copy2(best, renamed / "best.pth")
    shutil.copy2(last, renamed / "whatever.pth")  # not <best>.last.pth: paired by run id, not by name
    shutil.copy2(best, renamed / "unrelated.pth")
    other = torch.load(renamed / "unrelated.pth", weights_only=True)
    other["run_id"] = "00000000"  # another run's best checkpoint beside them is not taken
    torch.save(other, renamed / "unrelated.pth")
    out = subprocess.run(_cli("--epochs=3", f"--resume_from={renamed / 'best.pth'}"), cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Checkpoint {renamed / 'whatever.pth'} loaded; resuming from epoch 2" in out.stderr
    assert f"{LOADING}{renamed / 'best.pth'}" in out.stderr  # the test evaluation reads the run's own best
    assert torch.load(renamed / "whatever.pth", weights_only=True)["epoch"] == 2  # the pair stays two files
    assert sorted(p.name for p in renamed.iterdir()) == ["best.pth", "unrelated.pth", "whatever.pth"]


def test_reloading_a_checkpoint_writes_nothing_where_it_is_called(tmp_path, finished_run, monkeypatch):
    _, best, _ = finished_run
    monkeypatch.chdir(tmp_path)
    from recbole_darec import load_data_and_model

    load_data_and_model(str(best))
    assert not (tmp_path / "log_tensorboard").exists() and list(tmp_path.iterdir()) == []
