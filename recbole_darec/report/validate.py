"""Checks that run before any training: every model name, the dataset, and each model's config must resolve.

A comparison that dies on its fifth model after an hour of training is the failure this module prevents.
"""
import inspect
from pathlib import Path


class CompareError(ValueError):
    """A model, dataset or setting that makes the comparison impossible; raised before any run starts."""


def recbole_zoo_names():
    """Names of RecBole's general (collaborative-filtering) recommenders."""
    from recbole.model import general_recommender
    from recbole.model.abstract_recommender import GeneralRecommender

    return sorted(name for name, obj in inspect.getmembers(general_recommender, inspect.isclass)
                  if issubclass(obj, GeneralRecommender) and obj is not GeneralRecommender)


def check_models(models):
    """Raise :class:`CompareError` naming every unknown model and listing the available ones."""
    from recbole_darec.model import get_model, plugin_model_names

    if not models:
        raise CompareError("no models given: --models=BPR,LightGCN,DaRecLightGCN")
    unknown = []
    for name in models:
        try:
            get_model(name)
        except (ValueError, ImportError):
            # RecBole's own lookup of an unknown name walks into exlib_recommender, which imports the optional
            # lightgbm/xgboost packages: a missing one means "not a model we can run" here, too.
            unknown.append(name)
    if unknown:
        raise CompareError(
            f"unknown model(s): {', '.join(unknown)}. Plugin models: {', '.join(plugin_model_names())}. "
            f"RecBole general recommenders: {', '.join(recbole_zoo_names())}."
        )


def dataset_choices(data_path=None):
    """Datasets with a plugin config (dataset_configs/) or a folder of atomic files in the data path."""
    from recbole_darec.config import DATASET_DIR, available_datasets

    root = Path(data_path) if data_path else DATASET_DIR
    folders = [p.name for p in root.glob("*") if p.is_dir() and any(p.glob(f"{p.name}*.inter"))]
    return sorted(set(available_datasets()) | set(folders))


def check_dataset(dataset, overrides=None):
    """Raise :class:`CompareError` for a dataset that has neither a plugin config nor files."""
    choices = dataset_choices((overrides or {}).get("data_path"))
    if dataset not in choices:
        raise CompareError(f"unknown dataset '{dataset}': available datasets are {', '.join(choices)}")


def check_configs(models, dataset, config_files, overrides):
    """Build each model's Config once (YAML errors, missing data files, bad keys surface now, not mid-run)."""
    from recbole_darec.config import Config
    from recbole_darec.config import recbole_environment

    for path in config_files:
        if not Path(path).is_file():
            raise CompareError(f"config file not found: {path}")
    if "seed" in overrides:
        raise CompareError("seed is set per run: use --seeds N or --seed-list A,B,C instead of --seed")
    for model in models:
        try:
            with recbole_environment():
                Config(model=model, dataset=dataset, config_file_list=list(config_files) or None,
                       config_dict=dict(overrides))
        except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
            raise CompareError(f"config for {model} on {dataset} does not build: {err}") from err


def validate(models, dataset, config_files=(), overrides=None):
    """All checks, cheapest first."""
    overrides = overrides or {}
    check_models(models)
    check_dataset(dataset, overrides)
    check_configs(models, dataset, config_files, overrides)
