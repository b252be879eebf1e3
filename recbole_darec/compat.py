"""Every fix RecBole 1.2.1 needs to run on the current scientific stack.

``recbole_darec/__init__.py`` calls :func:`apply` before anything imports RecBole's models. Each fix names the
breakage it repairs and has a test in ``tests/test_compat.py`` that fails without it. The fixes are idempotent.

Two breakages are handled elsewhere, at their own depth: ``recbole.quick_start`` imports ray at module load and
reports *test* metrics through ``tune.report`` -- the plugin never imports it (``quick_start.py`` has its own
run/objective functions); torch >= 2.6 loads checkpoints with ``weights_only=True`` and RecBole pickles its whole
Config into them -- ``trainer.py`` saves a plain-dict config instead, so safe loading works.
"""
import os
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recbole_darec.run_id import new_run_id

_APPLIED = False


def _restore_numpy_aliases():
    """numpy 2 removed ``np.float_``, ``np.complex_``, ``np.unicode_`` (and numpy 1.24 removed ``np.float`` & co).

    RecBole's ``Config.compatibility_settings`` reads ``np.float_`` (AttributeError on numpy 2) and its metrics use
    ``np.float`` / ``np.bool`` at call time, so both generations of aliases are restored.
    """
    aliases = {
        "float_": np.float64, "complex_": np.complex128, "unicode_": np.str_,
        "float": np.float64, "int": np.int_, "bool": np.bool_, "complex": np.complex128,
        "object": np.object_, "str": np.str_, "long": np.int_, "unicode": np.str_,
    }
    for name, value in aliases.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def _restore_dok_update():
    """scipy >= 1.13 dropped ``dok_matrix._update``, which RecBole's LightGCN/NCL/NGCF/GCMC/SpectralCF use
    to fill their adjacency. The dok matrix keeps its entries in ``_dict`` now, so we write into that."""
    if hasattr(sp.dok_matrix, "_update"):
        return

    def _update(self, data):
        self._dict.update(data)

    sp.dok_matrix._update = _update


def _check_pandas():
    """pandas 3 makes RecBole's ``df[field].fillna(..., inplace=True)`` a silent no-op (copy-on-write) and
    ``Series.agg(len)`` returns one scalar instead of per-row lengths, so missing values stay NaN and
    float_seq normalisation breaks. We pin ``pandas<3`` in setup.py and refuse to run on pandas 3 rather than
    train on silently unfilled features."""
    major = int(pd.__version__.split(".")[0])
    if major >= 3:
        raise ImportError(
            f"recbole_darec needs pandas < 3 (found {pd.__version__}): RecBole 1.2.1's in-place fillna does "
            "nothing on pandas 3. Install with `pip install 'pandas>=2.2,<3'` (make setup does this)."
        )
    # On pandas 2 the chained in-place fillna still works (tests/test_compat.py checks it); its FutureWarning
    # about pandas 3 would print a screenful per dataset load, so it is silenced for RecBole's module only.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.dataset")


class LazyTensorBoard:
    """A TensorBoard writer that creates its folder at the first event, in a folder named after the run.

    RecBole's ``get_tensorboard`` names the folder after the log file, or ``model-<time to the second>`` when there
    is none (Ray trials, reloads), and creates it in the trainer's constructor: two runs started in the same second
    wrote into one folder, and a reload that never trains (``load_data_and_model``) left an empty folder in the
    caller's working directory.
    """

    ROOT = "log_tensorboard"  # RecBole's cwd-relative folder

    def __init__(self, logger):
        from recbole.utils import get_local_time  # lazy: RecBole loads after apply() (recbole_darec/__init__.py)

        stem = next((os.path.basename(h.baseFilename).split(".")[0] for h in logger.handlers
                     if hasattr(h, "baseFilename")), None)  # the log file is named per run (its hash has the run id)
        self.log_dir = os.path.join(self.ROOT, stem or f"model-{get_local_time()}-{new_run_id()}")
        self._writer = None

    def __getattr__(self, name):  # add_scalar, add_hparams, flush, ...: the real writer, made on first use
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard, only once a run logs to it

            self._writer = SummaryWriter(self.log_dir)
        return getattr(self._writer, name)

    def close(self):
        if self._writer is not None:
            self._writer.close()


def _name_tensorboard_per_run():
    import recbole.trainer.trainer as recbole_trainer  # lazy: RecBole loads after the numpy/scipy fixes above

    recbole_trainer.get_tensorboard = LazyTensorBoard


def apply():
    """Apply all fixes once per process (safe to call again, e.g. inside Ray workers)."""
    global _APPLIED
    if _APPLIED:
        return
    _restore_numpy_aliases()
    _restore_dok_update()
    _check_pandas()
    _name_tensorboard_per_run()
    _APPLIED = True
