"""Faults the tests inject into Ray's worker processes (production code carries no test hooks).

``test_tune.py``'s Ray starts every worker with this module's :func:`install` (Ray's ``worker_process_setup_hook``)
and ``RECBOLE_DAREC_TEST_FAULTS`` naming a folder. While ``<folder>/armed`` exists, the first trial report made
after it raises once (``<folder>/failed`` is created first, so Ray's retry succeeds).
"""
import os
from pathlib import Path

FOLDER_ENV = "RECBOLE_DAREC_TEST_FAULTS"


def install():
    folder = os.environ.get(FOLDER_ENV)
    if not folder:
        return
    from recbole_darec.tune import trainable

    report = trainable._Reporter.__call__

    def report_then_fail_once(self, *args, **kwargs):
        report(self, *args, **kwargs)
        if (Path(folder) / "armed").exists() and not (Path(folder) / "failed").exists():
            (Path(folder) / "failed").touch()
            raise RuntimeError("fault injected by tests/ray_faults.py; the retry will pass")

    trainable._Reporter.__call__ = report_then_fail_once
