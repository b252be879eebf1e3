"""Dataset helpers: RLMRec conversion, restricted pickle loading.

The converter is used as ``from recbole_darec.data.convert_rlmrec import convert_rlmrec`` (its function is not
re-exported here, since the package attribute ``convert_rlmrec`` is the submodule of the same name).
"""
from recbole_darec.data.safe_pickle import UnsafePickleError, safe_load_pickle

__all__ = ["UnsafePickleError", "safe_load_pickle"]
