"""Ray Tune sweeps with real Ray on the CPU: BPR on ml-100k, 2-4 epochs, at most 2 CPUs per Ray instance."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ray = pytest.importorskip("ray")

from recbole_darec.tune import SearchSpaceError, SweepError, SweepOptions, load_space, run_sweep  # noqa: E402
from recbole_darec.tune import cli, final  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
RAY_BIN = str(Path(sys.executable).with_name("ray"))
# Small and quick: interactions only, big batches, narrow embeddings.
QUICK = {"load_col": {"inter": ["user_id", "item_id"]}, "train_batch_size": 4096, "eval_batch_size": 409600,
         "embedding_size": 32}


def write_space(folder, space, fixed=None, name="space.yaml"):
    path = Path(folder) / name
    path.write_text(yaml.safe_dump({"space": space, **({"fixed": fixed} if fixed else {})}), encoding="utf-8")
    return path


def sweep_options(tmp_path, space, fixed=None, **kw):
    defaults = dict(model="BPR", dataset="ml-100k", space=str(write_space(tmp_path, space, fixed)),
                    storage_path=str(tmp_path / "runs"), name="exp", overrides=dict(QUICK), verbose=0,
                    max_concurrent=2)
    defaults.update(kw)
    return SweepOptions(**defaults)


def trial_rows(exp_path):
    """{trial folder name: list of reported result rows} from Ray's per-trial result.json files."""
    rows = {}
    for result_file in Path(exp_path).glob("*/result.json"):
        lines = result_file.read_text(encoding="utf-8").splitlines()
        rows[result_file.parent.name] = [json.loads(line) for line in lines if line.strip()]
    return rows


@pytest.fixture(scope="module")
def ray_faults(tmp_path_factory):
    """The folder through which a test arms a fault in Ray's workers (tests/ray_faults.py)."""
    return tmp_path_factory.mktemp("ray-faults")


@pytest.fixture(scope="module")
def local_ray(ray_faults):
    """One private 2-CPU Ray for the in-process sweeps of this module; its workers load tests/ray_faults.py."""
    path = os.pathsep.join(p for p in (str(REPO / "tests"), os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "ray_faults.install",
                          "env_vars": {"PYTHONPATH": path, "RECBOLE_DAREC_TEST_FAULTS": str(ray_faults)}})
    yield
    ray.shutdown()


# -- validation: before Ray starts ----------------------------------------------------------------------------
BAD_SPACES = [
    ({"lr": {"type": "normal", "lower": 0, "upper": 1}}, "unknown type 'normal'"),
    ({"n_layers": {"type": "choice", "values": []}}, "'values' is empty"),
    ({"learning_rate": {"type": "uniform", "lower": 0.1, "upper": 0.01}}, "must be below upper"),
    ({"darec_k": {"type": "randint", "lower": 16, "upper": 2}}, "lower (16) > upper (2)"),
    ({"learning_rate": {"type": "loguniform", "lower": 0, "upper": 0.1}}, "bounds must be > 0"),
    ({"learning_rate": {"type": "uniform", "lowr": 0.1, "upper": 0.2}}, "unknown key(s) lowr"),
    ({"learning_rate": 0.01}, "constant values belong in the 'fixed' section"),
    ({"learning_rate": {"lower": 0.1, "upper": 0.2}}, "missing 'type'"),
    ({"model": {"type": "choice", "values": ["BPR"]}}, "cannot be searched"),
]


@pytest.mark.parametrize("space,message", BAD_SPACES)
def test_bad_space_is_refused_before_ray_starts(tmp_path, monkeypatch, space, message):
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start for a bad space"))
    with pytest.raises(SearchSpaceError) as err:
        run_sweep(sweep_options(tmp_path, space))
    assert message in str(err.value) and "space.yaml" in str(err.value)
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_space_file_shapes_and_grid_mode(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("space:\n  learning_rate: {type: loguniform, lower: 1e-4, upper: 1e-2}\nextra: 1\n")
    with pytest.raises(SearchSpaceError, match="unknown top-level key"):
        load_space(path)
    path.write_text("space:\n  learning_rate: {type: loguniform, lower: 1e-4, upper: 1e-2}\n")
    assert load_space(path).params["learning_rate"].lower == 1e-4  # '1e-4' without a dot is a number
    with pytest.raises(SearchSpaceError, match="grid search needs 'points: N'"):
        load_space(path, search="grid")
    path.write_text("space:\n  learning_rate: {type: loguniform, lower: 1e-4, upper: 1e-2, points: 3}\n"
                    "  darec_k: {type: randint, lower: 2, upper: 4}\n")
    space = load_space(path, search="grid")
    assert space.params["learning_rate"].grid_values() == pytest.approx([1e-4, 1e-3, 1e-2])
    assert space.params["darec_k"].grid_values() == [2, 3, 4]  # randint bounds are inclusive
    for name in ("lightgcn", "darec", "rlmrec", "rlmrec_gen"):
        load_space(REPO / "hyper" / f"{name}.yaml")  # the shipped spaces parse


def test_cli_reports_config_mistakes_before_ray(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    space = write_space(tmp_path, {"learning_rte": {"type": "choice", "values": [0.01]}})
    code = cli.main(["--model=BPR", "--dataset=ml-100k", f"--space={space}",
                     f"--storage-path={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and "learning_rte" in err and "did you mean learning_rate" in err
    code = cli.main(["--model=NoSuchModel", "--dataset=ml-100k", f"--space={space}"])
    assert code == 2 and "NoSuchModel" in capsys.readouterr().err
    code = cli.main(["--model=BPR", "--dataset=ml-100k", f"--space={space}", "--gpus-per-trial=1.5"])
    assert code == 2 and "--gpus-per-trial" in capsys.readouterr().err
    try:
        import optuna  # noqa: F401
    except ImportError:
        code = cli.main(["--model=BPR", "--dataset=ml-100k", f"--space={space}", "--search=optuna"])
        assert code == 2 and "pip install optuna" in capsys.readouterr().err
    opts = cli.parse_args(["--model=BPR", "--dataset=ml-100k", "--space=x.yaml", "--gpus-per-trial", "0.25",
                           "--epochs=3", "--learning_rate=0.01"])
    assert opts.gpus_per_trial == 0.25 and opts.overrides == {"epochs": "3", "learning_rate": "0.01"}


# -- sweeps on a local Ray ------------------------------------------------------------------------------------
def test_three_trial_sweep_reports_validation_and_tests_best_once(tmp_path, local_ray, monkeypatch):
    calls = []
    real_evaluate = final.evaluate_best
    monkeypatch.setattr(final, "evaluate_best", lambda *a, **k: calls.append(1) or real_evaluate(*a, **k))
    opts = sweep_options(tmp_path, {"learning_rate": {"type": "grid", "values": [0.01, 0.005, 0.002]}},
                         {"epochs": 2}, scheduler="fifo")
    result = run_sweep(opts)

    table = pd.read_csv(result.experiment_path / "trials.csv")
    assert len(table) == 3 and set(table["status"]) == {"TERMINATED"}
    rows = trial_rows(result.experiment_path)
    assert len(rows) == 3
    for reports in rows.values():  # one report per evaluation, validation metrics only
        assert [r["epoch"] for r in reports] == [0, 1]
        assert [r["training_iteration"] for r in reports] == [1, 2]
        assert not [k for r in reports for k in r if "test" in k.lower()]
        assert all("valid_recall@20" in r for r in reports)
    best_by_valid = max(rows.values(), key=lambda rs: max(r["valid_score"] for r in rs))
    assert result.best_trial_id == best_by_valid[0]["trial_id"] == table.loc[0, "trial_id"]
    assert calls == [1]  # exactly one test evaluation, in the driver
    records = list(result.experiment_path.rglob("*test*.json"))
    assert [p.name for p in records] == ["test_result.json"]
    record = json.loads(records[0].read_text())
    assert record["trial_id"] == result.best_trial_id and set(record["test_result"]) >= {"recall@20", "ndcg@20"}
    # the reloaded best model scores on validation what the trial reported
    assert record["valid_result"]["recall@20"] == pytest.approx(table.loc[0, "best_valid_score"], abs=1e-4)
    assert (result.experiment_path / "trials.md").read_text().count("\n") == 2 + 3
    assert (result.experiment_path / "sensitivity_learning_rate.png").stat().st_size > 1000


def test_asha_stops_a_trial_that_cannot_learn(tmp_path, local_ray):
    opts = sweep_options(tmp_path, {"learning_rate": {"type": "grid", "values": [0.01, 0.005, 1e-7]}},
                         {"epochs": 4}, scheduler="asha", grace_period=1, reduction_factor=2, final="none")
    table = run_sweep(opts).table.set_index("learning_rate")
    assert table.loc[1e-7, "evaluations"] == 1 and table.loc[1e-7, "stopped"] == "scheduler"
    assert table.loc[0.01, "evaluations"] == 4
    assert table.loc[1e-7, "evaluations"] < table["evaluations"].max()


def test_failed_trial_is_retried_from_its_checkpoint_and_best_retrained(tmp_path, local_ray, ray_faults):
    opts = sweep_options(tmp_path, {"learning_rate": {"type": "grid", "values": [0.01]}},
                         {"epochs": 2}, max_failures=1, final="retrain")
    (ray_faults / "armed").touch()  # the trial's first report raises once (tests/ray_faults.py)
    try:
        result = run_sweep(opts)
    finally:
        (ray_faults / "armed").unlink()
    assert (ray_faults / "failed").exists()  # the first attempt did fail
    assert list(result.table["status"]) == ["TERMINATED"] and result.table.loc[0, "evaluations"] == 2
    (last,) = [r.metrics for r in result.result_grid]
    # The retry resumed from the checkpoint of epoch 0 (starting over would have made a third report).
    assert (last["training_iteration"], last["epoch"], last["iterations_since_restore"]) == (2, 1, 1)
    (reports,) = trial_rows(result.experiment_path).values()
    epochs = [r["epoch"] for r in reports]  # Ray may drop the row reported just before the crash, never repeat it
    assert len(epochs) == len(set(epochs)) and epochs[-1] == 1
    # --final=retrain: the best config trained again from scratch, then tested once. (Its scores need not equal
    # the resumed trial's: RNG state is not part of RecBole checkpoints, so epochs after a resume differ.)
    record = json.loads((result.experiment_path / "test_result.json").read_text())
    assert record["mode"] == "retrain" and (result.experiment_path / "best_model.pth").is_file()
    assert record["best_epoch"] in (0, 1) and record["test_result"]["recall@20"] > 0.05


def _sweep_command(space, runs, *extra):
    quick = [f"--{k}={v!r}" if isinstance(v, dict) else f"--{k}={v}" for k, v in QUICK.items()]
    return [PYTHON, str(REPO / "run_hyper.py"), "--model=BPR", "--dataset=ml-100k", f"--space={space}",
            f"--storage-path={runs}", "--name=exp", "--scheduler=fifo", "--verbose=0", *extra, *quick]


def _sweep_status(exp_path):
    return json.loads((exp_path / "sweep.json").read_text())["status"]


FINAL_FILES = ("test_result.json", "best_model.pth", "trials.csv", "trials.md")


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path, local_ray):
    # Six short trials run one at a time: after the first finishes, five remain, so the SIGTERM below lands while
    # the sweep is still running even when the first result reaches disk late on a slow machine.
    rates = [0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002]
    space = write_space(tmp_path, {"learning_rate": {"type": "grid", "values": rates}}, {"epochs": 3})
    runs = tmp_path / "runs"
    cmd = _sweep_command(space, runs, "--max-concurrent=1", "--num-cpus=1")
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = _wait_for_finished_trial(runs / "exp", proc, timeout=150)
        proc.send_signal(signal.SIGTERM)  # stops the sweep as Ctrl+C does: Ray saves the experiment state
        _, err = proc.communicate(timeout=90)
    finally:
        _kill_group(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.splitlines()[-1] == ("run_hyper.py: error: sweep interrupted, resume with --resume --name=exp "
                                    f"--storage-path={runs} --num-cpus=1")
    assert not [name for name in FINAL_FILES if (runs / "exp" / name).exists()]
    assert _sweep_status(runs / "exp") == "interrupted"
    before = first.read_bytes(), first.stat().st_mtime_ns

    result = run_sweep(SweepOptions(resume=True, name="exp", storage_path=str(runs), verbose=0))
    assert len(result.table) == len(rates) and set(result.table["status"]) == {"TERMINATED"}
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before  # the finished trial was not rerun
    assert all((r.metrics["training_iteration"], r.metrics["epoch"]) == (3, 2) for r in result.result_grid)
    assert (result.experiment_path / "test_result.json").is_file()
    assert _sweep_status(result.experiment_path) == "finished"


def test_ctrl_c_mid_trial_stops_without_a_result_and_resume_finishes(tmp_path):
    # Every trial is running when Ctrl+C lands (none waits): Ray then marks them all TERMINATED in memory, which
    # once passed for a finished sweep and tested a half-trained model.
    space = write_space(tmp_path, {"learning_rate": {"type": "grid", "values": [0.01, 0.005]}}, {"epochs": 6})
    runs, exp = tmp_path / "runs", tmp_path / "runs" / "exp"
    proc = subprocess.Popen(_sweep_command(space, runs, "--max-concurrent=2", "--num-cpus=2"), cwd=tmp_path,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 150
        while not any(f.read_text().strip() for f in exp.glob("*/result.json")):  # a trial has reported
            assert proc.poll() is None and time.time() < deadline, "the sweep never got going"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        _kill_group(proc)
    assert proc.returncode == 130, err[-3000:]
    hint = f"--resume --name=exp --storage-path={runs} --num-cpus=2"
    assert err.splitlines()[-1] == f"run_hyper.py: error: sweep interrupted, resume with {hint}"
    assert not [name for name in FINAL_FILES if (exp / name).exists()] and not list(exp.glob("sensitivity_*"))
    assert _sweep_status(exp) == "interrupted"
    # Ray's saved state, which --resume continues, has both trials still to run
    from ray.tune import ExperimentAnalysis

    assert [t.status for t in ExperimentAnalysis(str(exp)).trials] == ["PENDING", "PENDING"]

    done = subprocess.run([PYTHON, str(REPO / "run_hyper.py"), *hint.split(), "--verbose=0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Best trial" in done.stdout and _sweep_status(exp) == "finished"
    table = pd.read_csv(exp / "trials.csv")
    assert set(table["status"]) == {"TERMINATED"} and list(table["evaluations"]) == [6, 6]
    record = json.loads((exp / "test_result.json").read_text())
    assert record["best_epoch"] == table.loc[0, "best_epoch"] and record["test_result"]["recall@20"] > 0


def _wait_for_finished_trial(exp_path, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for result_file in exp_path.glob("*/result.json"):
            lines = [json.loads(x) for x in result_file.read_text().splitlines() if x.strip()]
            if lines and lines[-1].get("done") or len(lines) == 3:
                return result_file
        if proc.poll() is not None:
            pytest.fail(f"sweep ended before it could be interrupted:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.2)
    pytest.fail("no trial finished in time")


def _kill_group(proc):
    # Only the process group this test started (the CLI and the Ray processes it launched).
    if proc.poll() is None:
        proc.kill()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- a two-node cluster on this machine -----------------------------------------------------------------------
def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _node_ports():
    p = _free_ports(16)
    return ["--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]),
            "--dashboard-agent-listen-port", str(p[2]), "--dashboard-agent-grpc-port", str(p[3]),
            "--metrics-export-port", str(p[4]), "--runtime-env-agent-port", str(p[5]),
            "--worker-port-list", ",".join(map(str, p[6:]))]


def _cluster_env():
    # Ray >= 2.5x turns token authentication on for a head node when ~/.ray/auth_token exists, but a joining node
    # only sends a token when told to: give head, worker and driver one token of their own, as on a real cluster.
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN_PATH"}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def _start_node(args, temp_dir, log, env):
    # --block keeps `ray start` in the foreground: terminating it stops exactly the processes of this node
    # (`ray stop` would stop every Ray process of this user on the machine, other people's too).
    proc = subprocess.Popen([RAY_BIN, "start", "--block", "--num-cpus=1", "--disable-usage-stats",
                             f"--temp-dir={temp_dir}", *args, *_node_ports()],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    return proc


def _wait_started(log_path, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "Ray runtime started" in log_path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            pytest.fail(f"ray start failed:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    pytest.fail(f"ray start timed out:\n{log_path.read_text()[-3000:]}")


def test_two_node_cluster_runs_trials_on_both_nodes(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    (port, client_port), nodes, env = _free_ports(2), [], _cluster_env()
    address = f"127.0.0.1:{port}"
    try:
        head_log = tmp_path / "head.log"
        with open(head_log, "w") as log:
            nodes.append(_start_node(["--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                                      "--include-dashboard=false", f"--ray-client-server-port={client_port}"],
                                     temp_dir, log, env))
        _wait_started(head_log, nodes[0])
        worker_log = tmp_path / "worker.log"
        with open(worker_log, "w") as log:
            nodes.append(_start_node([f"--address={address}", "--node-ip-address=127.0.0.1"],
                                     temp_dir, log, env))
        _wait_started(worker_log, nodes[1])

        space = write_space(tmp_path, {"learning_rate": {"type": "grid", "values": [0.01, 0.005]}},
                            {"epochs": 2})
        quick = [f"--{k}={v!r}" if isinstance(v, dict) else f"--{k}={v}" for k, v in QUICK.items()]
        cmd = [PYTHON, str(REPO / "run_hyper.py"), "--model=BPR", "--dataset=ml-100k", f"--space={space}",
               f"--address={address}", f"--storage-path={tmp_path / 'runs'}", "--name=cluster",
               "--scheduler=fifo", "--cpus-per-trial=1", "--gpus-per-trial=0", "--verbose=0", *quick]
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        table = pd.read_csv(tmp_path / "runs" / "cluster" / "trials.csv")
        assert len(table) == 2 and set(table["status"]) == {"TERMINATED"}
        node_ids = {r[-1]["node_id"] for r in trial_rows(tmp_path / "runs" / "cluster").values()}
        assert len(node_ids) == 2  # one trial on each node
    finally:
        for proc in reversed(nodes):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(nodes):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of this node's group is left
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)
