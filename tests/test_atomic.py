"""recbole_darec.atomic: the one all-or-nothing file write every writer of the package goes through."""
import json
import os
import stat

import pytest
import torch

from recbole_darec.atomic import atomic_path, atomic_write_json, atomic_write_text
from recbole_darec.checkpoints import atomic_save


def test_success_replaces_the_target_under_its_exact_name(tmp_path):
    target = tmp_path / "sweep.json"
    target.write_text("old", encoding="utf-8")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name != target.name
        assert tmp.name.startswith(".sweep.json.") and tmp.name.endswith(".tmp")
        tmp.write_text("new", encoding="utf-8")
        assert target.read_text(encoding="utf-8") == "old"  # nothing visible before the block ends
    assert target.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.json"]


def test_a_failing_block_leaves_the_previous_file_and_no_temp_file(tmp_path):
    target = tmp_path / "latest.pth"
    target.write_text("previous", encoding="utf-8")
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("killed mid-write")
    assert target.read_text(encoding="utf-8") == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pth"]


def test_a_failing_first_write_creates_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "new.json"):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_permissions_follow_the_umask_unless_a_mode_is_given(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "plain.txt", "x")
        atomic_write_text(tmp_path / "shared.txt", "x", mode=0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o640  # what open() would give
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644


def test_json_helper_passes_dumps_options(tmp_path):
    target = tmp_path / "test_result.json"
    atomic_write_json(target, {"path": tmp_path, "n": 1}, indent=2, default=str)
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == {"path": str(tmp_path), "n": 1}
    assert text.startswith('{\n  "path"')


def test_checkpoint_save_that_fails_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "model.pth"
    atomic_save({"epoch": 3}, target)
    with pytest.raises(Exception):
        atomic_save({"epoch": 4, "bad": lambda: None}, target)  # a lambda cannot be pickled
    assert torch.load(target, weights_only=True) == {"epoch": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
