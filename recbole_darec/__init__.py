"""recbole_darec: DaRec (disentangled LLM/CF alignment) for RecBole's graph recommenders."""
from recbole_darec import compat

compat.apply()  # must run before RecBole's models and metrics are used

from recbole_darec.config import Config  # noqa: E402
from recbole_darec.model import get_model  # noqa: E402
from recbole_darec.quick_start import load_data_and_model, run_recbole_darec  # noqa: E402

__all__ = ["Config", "get_model", "run_recbole_darec", "load_data_and_model"]
__version__ = "0.1.0"
