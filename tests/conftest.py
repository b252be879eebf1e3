"""Shared fixtures: small, quiet RecBole configs so the suite fits a 2-core CI box."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never fetch models from the internet
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# Where each third-party folder comes from (dataset/README.md has the details and the converters).
DATA_ORIGINS = {"rlmrec": "HKUDS/RLMRec's data/ folders",
                "amazon_scientific": "RUCAIBox/UniSRec's downstream dataset 'Scientific'",
                "amazon_office": "ysh-1998/LRD's data/Office (Amazon 2014 Office Products, ReChorus layout)"}


@pytest.hookimpl(tryfirst=True)  # before fixtures: a module fixture that loads the data must not run without it
def pytest_runtest_setup(item):
    """``@pytest.mark.needs_data("rlmrec/yelp")``: the test reads third-party data from ``shared/data/<subdir>``
    beside the checkout (or ``$RECBOLE_DAREC_SHARED_DATA``). Absent, the test skips with where to get it; under
    ``CI=true``, where the data is always mounted, absence is an error, so data tests cannot silently stop running."""
    from recbole_darec.data.sources import shared_data_dir

    for mark in item.iter_markers("needs_data"):
        for subdir in mark.args:
            path = shared_data_dir() / subdir
            if path.is_dir() and any(path.iterdir()):
                continue
            origin = DATA_ORIGINS.get(subdir.split("/")[0], "the original files")
            message = (f"third-party data not found at {path}: get {origin} (docs/datasets.md, dataset/README.md) "
                       "into shared/data/ beside the checkout (or the folder $RECBOLE_DAREC_SHARED_DATA names)")
            if os.environ.get("CI", "").strip().lower() in ("true", "1"):
                pytest.fail(f"CI=true but {message}", pytrace=False)
            pytest.skip(message)


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
