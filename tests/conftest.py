"""Shared fixtures: small, quiet RecBole configs so the suite fits a 2-core CI box."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_RLMREC = REPO.parent / "shared" / "data" / "rlmrec"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never fetch models from the internet
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def quick_config(tmp_path):
    """Overrides that make a run short and quiet and keep checkpoints in a temp dir."""
    return {
        "epochs": 1,
        "state": "WARNING",
        "show_progress": False,
        "checkpoint_dir": str(tmp_path / "saved"),
        "train_batch_size": 4096,
        "eval_batch_size": 409600,
        "embedding_size": 32,
    }


@pytest.fixture(scope="session", autouse=True)
def _clean_argv_for_module_fixtures():
    # Module-scoped fixtures build Configs before the per-test fixture below runs; pytest's own --key=value flags
    # (--durations=10) would reach RecBole's command-line parser and be refused as unknown config keys.
    argv = sys.argv
    sys.argv = argv[:1]
    yield
    sys.argv = argv


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    # RecBole's Config parses sys.argv for --key=value; pytest's own flags must not leak into it.
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
