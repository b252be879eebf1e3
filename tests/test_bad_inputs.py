"""Bad inputs that used to hang, crash after the data load, or print RecBole's config dump before their error line.

Each command runs as the user runs it: ``run_recbole_darec.py`` in a subprocess, at the default log level (INFO,
where the console used to show the config dump), in a fresh working folder with a private ml-100k. Each must end
with exit status 2 and one line on stderr naming the culprit, leaving both folders as they were.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--dataset=ml-100k", "--epochs=1", "--train_batch_size=4096", "--eval_batch_size=409600",
         "--show_progress=False", "--semantic_show_progress=False"]
# Root ignores permission bits; without these two capabilities it obeys them like any user.
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


def snapshot(folder):
    return {p: None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).rglob("*")}


def provided_embeddings(folder):
    """The user's own 8-d ``.useremb`` / ``.itememb`` for ml-100k (no encoding needed)."""
    rng = np.random.default_rng(0)
    for side, field in (("user", "uid"), ("item", "iid")):
        ids = [line.split("\t")[0] for line in (folder / f"ml-100k.{side}").read_text().splitlines()[1:]]
        rows = [f"{i}\t{' '.join(f'{v:.4f}' for v in rng.normal(size=8))}" for i in ids]
        (folder / f"ml-100k.{side}emb").write_text("\n".join([f"{field}:token\t{side}_emb:float_seq", *rows]) + "\n")


@pytest.fixture
def place(tmp_path):
    """``tmp/data/ml-100k`` (atomic files only) and an empty working folder ``tmp/run``."""
    data = tmp_path / "data" / "ml-100k"
    data.mkdir(parents=True)
    for suffix in ("inter", "item", "user"):
        shutil.copy(REPO / "dataset" / "ml-100k" / f"ml-100k.{suffix}", data)
    (tmp_path / "run").mkdir()
    yield tmp_path
    for path in (tmp_path / "run", data):
        path.chmod(0o755)


def read_only(*folders):
    """Make ``folders`` read-only; returns the command prefix under which that holds (root too)."""
    for folder in folders:
        folder.chmod(0o555)
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be made")
    return NO_OVERRIDE


def refused(place, args, needles, prefix=(), timeout=240):
    """Run the training CLI; assert exit 2, one stderr line with every needle, nothing written anywhere."""
    before = snapshot(place)
    cmd = [*prefix, sys.executable, str(REPO / "run_recbole_darec.py"), f"--data_path={place}/data", *args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("RECBOLE_DAREC_DEBUG", None)
    out = subprocess.run(cmd, cwd=place / "run", capture_output=True, text=True, timeout=timeout, env=env)
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 1 and not out.stdout, (out.returncode, out.stderr[-3000:])
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert snapshot(place) == before
    return lines[0]


def test_batch_size_0_is_refused_not_an_endless_loop(place):
    args = [a for a in SMALL if not a.startswith("--train_batch_size")] + ["--train_batch_size=0"]
    refused(place, ["--model=BPR", *args], ["train_batch_size=0", "> 0"], timeout=120)


def test_embedding_tables_larger_than_memory_are_refused_with_the_number(place):
    line = refused(place, ["--model=BPR", *SMALL, "--embedding_size=100000000"],
                   ["embedding_size=100000000", "2627 users and items", "GB"])
    assert "4203.2 GB" in line  # (944 + 1683) rows x 1e8 x 4 bytes x (weights, gradients, Adam's two states)


def test_value_refused_by_the_model_is_one_line_without_the_config_dump(place):
    refused(place, ["--model=LightGCNBackbone", *SMALL, "--layer_combine=max"], ["layer_combine", "'max'"])


def test_bad_embedding_file_is_one_line_without_the_config_dump(place):
    folder = place / "data" / "ml-100k"
    provided_embeddings(folder)
    with open(folder / "ml-100k.useremb", "a") as fh:
        fh.write("nobody\t" + " ".join(["0.1"] * 8) + "\n")
    refused(place, ["--model=DaRecLightGCN", *SMALL], ["ml-100k.useremb", "'nobody'"])


def test_darec_k_above_what_a_batch_can_hold_is_refused(place):
    folder = place / "data" / "ml-100k"
    provided_embeddings(folder)
    from recbole_darec import Config
    from recbole_darec.semantic import ensure_semantic_embeddings

    # validate the provided files once (the manifest remembers it), so that the refused run has nothing to write
    ensure_semantic_embeddings(Config(model="DaRecLightGCN", dataset="ml-100k",
                                      config_dict={"data_path": str(place / "data"), "state": "WARNING"}))
    # N̂ = 4096 and 2 x batch = 8192 allow K = 3000; ml-100k's 943 users + 1682 items do not
    refused(place, ["--model=DaRecLightGCN", *SMALL, "--darec_k=3000"], ["darec_k=3000", "at most 2625"])


def test_read_only_working_folder_is_named_before_anything_runs(place):
    prefix = read_only(place / "run")
    refused(place, ["--model=BPR", *SMALL], ["log folder", str(place / "run")], prefix=prefix)


def test_read_only_dataset_folder_is_named_before_encoding(place):
    folder = place / "data" / "ml-100k"
    prefix = read_only(folder)
    refused(place, ["--model=DaRecLightGCN", *SMALL], ["dataset folder", str(folder), "not writable"], prefix=prefix,
            timeout=120)  # it used to encode every profile (minutes) and crash on the first write


def test_read_only_dataset_folder_is_fine_when_nothing_is_written(place):
    """BPR writes nothing beside the data; its run on a read-only copy is a clean run."""
    prefix = read_only(place / "data" / "ml-100k")
    out = subprocess.run([*prefix, sys.executable, str(REPO / "run_recbole_darec.py"), "--model=BPR", *SMALL,
                          f"--data_path={place}/data", "--state=WARNING"], cwd=place / "run", capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-3000:]


def test_load_data_and_model_writes_nothing_in_the_callers_folder(tmp_path, monkeypatch, quick_config):
    from recbole_darec import load_data_and_model, run_recbole_darec

    (tmp_path / "train").mkdir()
    monkeypatch.chdir(tmp_path / "train")
    run_recbole_darec("BPR", "ml-100k", config_dict=quick_config)
    (checkpoint,) = [p for p in (tmp_path / "saved").glob("BPR-*.pth") if not p.name.endswith(".last.pth")]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config, model, *_ = load_data_and_model(str(checkpoint))
    assert config["model"] == "BPR" and not list(elsewhere.iterdir())  # no log_tensorboard/ here


def test_profiles_that_do_not_depend_on_the_split_pass_the_split_check_on_another_seed(tmp_path, monkeypatch):
    """User profiles without history are the same texts on every split: a new seed records its split instead of
    being refused after the run had loaded everything (the check compared with the first seed's split)."""
    import json

    from recbole_darec import Config
    from recbole_darec.semantic.settings import SemanticSettings
    from recbole_darec.single_run import build
    from test_semantic import FakeEncoder

    monkeypatch.setattr(SemanticSettings, "text_encoder", lambda settings: FakeEncoder())
    shutil.copytree(REPO / "dataset" / "ml-100k", tmp_path / "ml-100k", ignore=shutil.ignore_patterns(
        "*.semantic*", "*emb", "*.jsonl", ".*"))
    manifest = tmp_path / "ml-100k" / "ml-100k.semantic.json"
    fingerprints = []
    for seed in (2020, 7):
        config = Config(model="DaRecLightGCN", dataset="ml-100k", config_dict={
            "data_path": str(tmp_path), "seed": seed, "state": "WARNING", "semantic_show_progress": False,
            "checkpoint_dir": str(tmp_path / "saved"), "profile_user_template": "A {age}-year-old {gender}."})
        build(config)  # the model's split check passes
        fingerprints.append(json.loads(manifest.read_text())["user"]["train_fingerprint"])
    assert fingerprints[0] != fingerprints[1]  # the manifest names the split the run trained on
