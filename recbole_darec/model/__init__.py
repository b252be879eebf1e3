"""Model lookup: the plugin's models first, RecBole's zoo as the fallback."""
import importlib
import pkgutil

from recbole.utils import get_model as get_recbole_model

from recbole_darec.cli_errors import UserError

_PLUGIN_PACKAGE = "recbole_darec.model.general_recommender"


def plugin_model_names():
    """Names of the models the plugin itself defines (module ``general_recommender/<name.lower()>.py``)."""
    package = importlib.import_module(_PLUGIN_PACKAGE)
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{_PLUGIN_PACKAGE}.{info.name}")
        names += [n for n in dir(module) if n.lower() == info.name and isinstance(getattr(module, n), type)]
    return sorted(names)


def get_model(name):
    """Return the model class called ``name``: plugin first, then RecBole's zoo.

    Raises:
        ValueError: naming ``name`` and listing the plugin's models when neither knows it, or when ``name`` is no
            Python name at all (a path, a dotted name): it is looked up as a module name.
    """
    if not isinstance(name, str) or not name.isidentifier():
        _unknown(name, " (a model is named by letters, digits and _, not a path or a module)")
    try:
        module = importlib.import_module(f"{_PLUGIN_PACKAGE}.{name.lower()}")
    except ModuleNotFoundError as err:
        if err.name != f"{_PLUGIN_PACKAGE}.{name.lower()}":
            raise  # a real import error inside a plugin model must not be hidden
    else:
        if hasattr(module, name):
            return getattr(module, name)
    try:
        return get_recbole_model(name)
    except (ValueError, ImportError):
        # RecBole's search imports its exlib package (lightgbm, xgboost) for any name it has not found yet: a
        # missing optional package there says nothing about the name, so it is not reported.
        _unknown(name)


def _unknown(name, why=""):
    raise UserError(
        f"unknown model '{name}'{why}: plugin models are {', '.join(plugin_model_names())}; "
        f"RecBole's zoo (e.g. BPR, LightGCN, SGL, NCL, NGCF) is searched as well"
    ) from None
