"""Restricted unpickling for RLMRec data files.

A pickle can call any importable function while it loads (``os.system``, ``builtins.eval``, ...), so RLMRec's
``*.pkl`` files are never passed to :func:`pickle.load`. :class:`SafeUnpickler` resolves globals only from a fixed
table: the scipy.sparse matrix/array classes, the numpy helpers that rebuild arrays, dtypes and scalars, and
``_codecs.encode`` (protocol-2 pickles store bytes through it). Dicts, lists, tuples, str, int and float need no
global at all: the pickle opcodes build them directly. Anything else raises :class:`UnsafePickleError`.

What the shipped RLMRec matrices (protocol 4) reference, checked with ``pickletools``:
``scipy.sparse._coo.coo_matrix``, ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``.
Newer files (numpy 2, protocol 5) say ``numpy._core...`` and ``numpy._core.numeric._frombuffer`` instead.
"""
import codecs
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

try:  # numpy >= 2 moved the private core modules; pickles name either spelling
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer

__all__ = ["UnsafePickleError", "SafeUnpickler", "safe_load_pickle"]


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside the numpy / scipy.sparse allow-list."""


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` limited to what numpy's protocol-2 pickles use (bytes stored as latin-1 text)."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, encoding)


_SPARSE_NAMES = ("coo_matrix", "csr_matrix", "csc_matrix", "coo_array", "csr_array", "csc_array")
# Module names scipy has used for these classes over its versions (coo -> _coo in 1.8, _arrays in 1.8-1.10).
_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.coo", "scipy.sparse.csr", "scipy.sparse.csc",
                   "scipy.sparse._coo", "scipy.sparse._csr", "scipy.sparse._csc", "scipy.sparse._arrays")

_ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_encode}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = scalar
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _frombuffer
for _mod in _SPARSE_MODULES:
    for _name in _SPARSE_NAMES:
        _ALLOWED[(_mod, _name)] = getattr(sp, _name)


class SafeUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` only returns objects from the allow-list above.

    Nothing is imported on the pickle's behalf: names are looked up in a table of objects this module already
    holds, so a crafted module name cannot even trigger an import side effect.
    """

    def __init__(self, file, source="<pickle>"):
        super().__init__(file)
        self.source = str(source)

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refused to load global '{module}.{name}'; only numpy arrays/dtypes/scalars "
                f"and scipy.sparse coo/csr/csc matrices are allowed in RLMRec pickles") from None

    def persistent_load(self, pid):
        # Persistent ids hand object creation to the loader: never expected in RLMRec files.
        raise UnsafePickleError(f"{self.source}: persistent id {pid!r} refused")


def safe_load_pickle(path):
    """Load the pickle at ``path`` admitting only numpy / scipy.sparse types and plain containers.

    Returns the unpickled object. Raises :class:`UnsafePickleError` (a ``ValueError``) naming the file and the
    refused ``module.name`` when the pickle references anything else, and ``ValueError`` naming the file when it
    is truncated or not a pickle at all.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            return SafeUnpickler(fh, source=path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
