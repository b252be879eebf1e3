"""A checkpoint is data: strings stored in it never run as code, on any path that reads one back."""
import contextlib
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import recbole_darec  # noqa: F401  (compat shims)
from recbole_darec.cli_errors import UserError

REPO = Path(__file__).resolve().parents[1]


def crafted_checkpoint(path, marker, **fields):
    """A checkpoint torch's weights_only loader accepts, whose config strings would create ``marker`` if eval'd."""
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch() or 'x'"
    state = {"model": "LightGCNBackbone", "dataset": "ml-100k", "epoch": 0, "seed": 2020, "cur_step": 0,
             "best_valid_score": 0.0, "state_dict": {}, "optimizer": {},
             # a string key nothing else validates, so the rebuild goes all the way to the weights
             "config_overrides": {"wandb_project": payload, "embedding_size": 16, "data_path": str(REPO / "dataset")},
             **fields}
    torch.save(state, path)
    torch.load(path, weights_only=True)  # really loadable by the safe loader
    return path


def test_load_data_and_model_never_evaluates_stored_strings(tmp_path):
    from recbole_darec.quick_start import load_data_and_model

    marker = tmp_path / "MARKER"
    path = crafted_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(UserError, match="does not fit"):  # the empty state_dict; the config was built from data
        load_data_and_model(str(path))
    assert not marker.exists()


def test_resume_from_never_evaluates_stored_strings(tmp_path):
    marker = tmp_path / "MARKER"
    path = crafted_checkpoint(tmp_path / "evil.pth", marker)
    out = subprocess.run([sys.executable, str(REPO / "run_recbole_darec.py"), "--model=LightGCNBackbone",
                          "--dataset=ml-100k", "--epochs=1", f"--resume_from={path}", "--state=WARNING"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "evil.pth" in out.stderr and not marker.exists()


def test_tune_reload_never_evaluates_stored_strings(tmp_path):
    from recbole_darec.tune.final import _evaluate_best
    from recbole_darec.tune.trainable import BEST_FILE

    marker = tmp_path / "MARKER"
    trial = tmp_path / "trial"
    trial.mkdir()
    crafted_checkpoint(trial / BEST_FILE, marker)

    @contextlib.contextmanager
    def as_directory():
        yield str(trial)

    best = SimpleNamespace(checkpoint=SimpleNamespace(as_directory=as_directory), metrics={}, path=str(trial))
    settings = {"gpus_per_trial": 0, "config_dict": {}, "model": "LightGCNBackbone", "dataset": "ml-100k"}
    with pytest.raises(UserError):
        _evaluate_best(best, settings, {}, tmp_path, "reload")
    assert not marker.exists()


@pytest.mark.parametrize("content, needle", [
    (b"not a checkpoint at all", "not a readable torch checkpoint"),
    (b"", "not a readable torch checkpoint"),
])
def test_invalid_files_are_one_clear_error(tmp_path, content, needle):
    from recbole_darec.checkpoints import load_checkpoint

    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match=needle):
        load_checkpoint(path)


def test_pickled_objects_are_refused_not_unpickled(tmp_path):
    from recbole_darec.checkpoints import load_checkpoint

    path = tmp_path / "pickled.pth"
    torch.save({"model": "LightGCNBackbone", "obj": SimpleNamespace(a=1)}, path)
    with pytest.raises(UserError, match="could run code"):
        load_checkpoint(path)


def test_names_in_a_checkpoint_must_be_plain(tmp_path):
    from recbole_darec.checkpoints import load_checkpoint

    path = crafted_checkpoint(tmp_path / "c.pth", tmp_path / "m", dataset="../../etc")
    with pytest.raises(UserError, match="not a plain name"):
        load_checkpoint(path)
