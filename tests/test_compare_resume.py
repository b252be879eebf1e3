"""A comparison killed mid-run continues that run from its every-epoch checkpoint on the next invocation and ends
with the record of an uninterrupted run; a checkpoint written with other settings is not resumed (the run starts
over, saying why). Real runs of run_compare.py on ml-100k in subprocesses with one CPU thread (bit for bit)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"epochs": 8, "eval_step": 1, "stopping_step": 10, "embedding_size": 16, "train_batch_size": 2048,
            "eval_batch_size": 409600, "learning_rate": 0.002, "load_col": {"inter": ["user_id", "item_id"]}}
KILL_AFTER_EPOCH = 2  # kill once the every-epoch checkpoint says this epoch is finished


def _command(out, config_file):
    return [sys.executable, str(REPO / "run_compare.py"), "--dataset=ml-100k", "--models=LightGCNBackbone",
            "--seeds=1", f"--out={out}", f"--config_files={config_file}", "--no-tsne"]


def _env():
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(out, config_file, *extra):
    done = subprocess.run(_command(out, config_file) + list(extra), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    (line,) = (out / "runs.jsonl").read_text().splitlines()
    return json.loads(line), done.stdout


def _killed(out, config_file):
    """Start the comparison and SIGKILL it once its run has finished epoch KILL_AFTER_EPOCH (but not the run)."""
    proc = subprocess.Popen(_command(out, config_file), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    folder = out / "checkpoints" / "LightGCNBackbone-seed2020"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            last = list(folder.glob("*.last.pth")) if folder.is_dir() else []
            if last and torch.load(last[0], weights_only=True)["epoch"] >= KILL_AFTER_EPOCH:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended (or never got going) before it could be killed"
    assert not (out / "runs.jsonl").exists()
    (last,) = folder.glob("*.last.pth")
    state = torch.load(last, weights_only=True)
    assert not state["finished"] and state["train_time_s"] > 0
    return state["epoch"]


def _same_run(a, b):
    for key in ("test", "valid", "best_valid_score", "curve", "epochs_run", "epochs_to_best"):
        assert a[key] == b[key], key


def test_killed_comparison_resumes_its_run_and_ends_like_an_uninterrupted_one(tmp_path):
    config_file = tmp_path / "settings.yaml"
    config_file.write_text(json.dumps(SETTINGS))  # JSON is YAML
    straight, stdout = _run(tmp_path / "straight", config_file, "--progress-every=0")
    assert straight["resumed_from_epoch"] is None and straight["epochs_run"] == SETTINGS["epochs"]
    # --progress-every=0: one console line per evaluation, with the score the record's curve holds
    progress = [line for line in stdout.splitlines() if line.startswith("  LightGCNBackbone seed=2020: epoch ")]
    assert len(progress) == len(straight["curve"]) == SETTINGS["epochs"]
    for line, point in zip(progress, straight["curve"]):
        assert f"epoch {point['epoch'] + 1}/{SETTINGS['epochs']}, valid recall@20 {point['score']:.4f} (best" in line
        assert "s/epoch" in line

    killed_at = _killed(tmp_path / "killed", config_file)
    assert KILL_AFTER_EPOCH <= killed_at < SETTINGS["epochs"] - 1
    shutil.copytree(tmp_path / "killed", tmp_path / "edited")
    resumed, stdout = _run(tmp_path / "killed", config_file)
    assert resumed["resumed_from_epoch"] == killed_at and f"resumed after epoch {killed_at}" in stdout
    _same_run(resumed, straight)  # same losses, validation curve and test metrics as if never stopped
    assert resumed["train_time_s"] > 0
    best = tmp_path / "killed" / resumed["checkpoint"]  # relative to the comparison's folder
    assert best.is_file() and not best.name.endswith(".last.pth")
    assert sorted(p.name for p in best.parent.iterdir()) == sorted([best.name, best.name[:-4] + ".last.pth"])

    # Trained but not recorded (lost between the end of training and the record): evaluated, not retrained.
    (tmp_path / "killed" / "runs.jsonl").unlink()
    evaluated, stdout = _run(tmp_path / "killed", config_file)
    assert "its training had ended; evaluating it" in stdout
    _same_run(evaluated, straight)
    assert evaluated["train_time_s"] == resumed["train_time_s"]  # no further training

    # The settings file changed after the interruption: resuming would mix two configurations.
    config_file.write_text(json.dumps({**SETTINGS, "learning_rate": 0.001}))
    restarted, stdout = _run(tmp_path / "edited", config_file)
    assert "not resumed (written with other settings: learning_rate)" in stdout
    assert restarted["resumed_from_epoch"] is None and restarted["epochs_run"] == SETTINGS["epochs"]
    assert restarted["curve"] != straight["curve"]
    folder = tmp_path / "edited" / "checkpoints" / "LightGCNBackbone-seed2020"
    assert len(list(folder.glob("*.pth"))) == 2  # the stale pair was removed, this run's best and last remain


REPORT_FILES = ("runs.jsonl", "table.md", "table.csv", "table.tex", "bars.png", "curves.png")


def _interrupt(out, config_file, *extra, whole_group=False):
    """Start the comparison, send SIGINT once a run has finished an epoch; returns (process, stderr, seconds from
    the signal to the exit). ``whole_group``: as a terminal's Ctrl+C, to the driver and its workers alike."""
    cmd = _command(out, config_file) + list(extra)
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not any(torch.load(p, weights_only=True)["epoch"] >= 1 for p in out.glob("checkpoints/*/*.last.pth")):
            assert proc.poll() is None and time.monotonic() < deadline, "no run got going before it could be stopped"
            time.sleep(0.05)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT) if whole_group else proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        return proc, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # only the group this test started
            proc.wait()


def test_ctrl_c_ends_the_comparison_without_a_report_and_its_command_continues(tmp_path):
    config_file = tmp_path / "settings.yaml"
    config_file.write_text(json.dumps(SETTINGS))
    out = tmp_path / "cmp"
    proc, err, _ = _interrupt(out, config_file)
    assert proc.returncode == 130, err[-3000:]
    continue_cmd = _command(out, config_file)[1:]
    continue_cmd[0] = "run_compare.py"
    assert err.splitlines()[-1] == (
        f"run_compare.py: error: comparison interrupted (finished runs are in {out / 'runs.jsonl'}); the same "
        f"command continues it, the cut-off run after its last finished epoch: python {' '.join(continue_cmd)}")
    assert not [name for name in REPORT_FILES if (out / name).exists()]

    record, stdout = _run(out, config_file)  # the command the line names
    assert record["resumed_from_epoch"] >= 1 and record["epochs_run"] == SETTINGS["epochs"]
    assert all((out / name).is_file() for name in REPORT_FILES)


def test_ctrl_c_stops_parallel_workers_at_once_and_starts_no_queued_run(tmp_path):
    config_file = tmp_path / "settings.yaml"
    config_file.write_text(json.dumps({**SETTINGS, "epochs": 30}))
    out = tmp_path / "cmp"
    proc, err, seconds = _interrupt(out, config_file, "--seeds=3", "--parallel=2", whole_group=True)
    assert proc.returncode == 130 and "comparison interrupted" in err.splitlines()[-1], err[-3000:]
    # The pool once finished the running runs and started the queued one (a worker hit by Ctrl+C takes the next).
    assert seconds < 30 and not (out / "checkpoints" / "LightGCNBackbone-seed2022").exists()
    assert not [name for name in REPORT_FILES if (out / name).exists()]
    deadline = time.monotonic() + 10
    while True:  # no worker outlives the driver
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "a worker is still running"
        time.sleep(0.1)
