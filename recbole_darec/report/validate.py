"""Checks that run before any training: every model name, the dataset, and each model's config must resolve.

A comparison that dies on its fifth model after an hour of training is the failure this module prevents.
"""
import inspect
from pathlib import Path

from recbole.model.abstract_recommender import GeneralRecommender

from recbole_darec.config import available_datasets, isolated_config
from recbole_darec.config_checks import read_config_file  # the run's reader: same errors, same file named
from recbole_darec.config_keys import undefined_keys
from recbole_darec.data.sources import has_atomic_files, locate
from recbole_darec.model import get_model, plugin_model_names
from recbole_darec.paths import DATASET_DIR
from recbole_darec.report.errors import CompareError
from recbole_darec.report.variants import resolve


def recbole_zoo_names():
    """Names of RecBole's general (collaborative-filtering) recommenders."""
    from recbole.model import general_recommender  # lazy: loads all of RecBole's general models; error path only

    return sorted(name for name, obj in inspect.getmembers(general_recommender, inspect.isclass)
                  if issubclass(obj, GeneralRecommender) and obj is not GeneralRecommender)


def check_models(models):
    """Raise :class:`CompareError` naming every unknown model and listing the available ones."""
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
    root = Path(data_path) if data_path else DATASET_DIR
    folders = [p.name for p in root.glob("*") if p.is_dir() and any(p.glob(f"{p.name}*.inter"))]
    return sorted(set(available_datasets()) | set(folders))


def configured_data_path(config_files=(), overrides=None):
    """``data_path`` as a run would get it from its config files and overrides (later wins, overrides last)."""
    data_path = None
    for path in config_files:
        if not Path(path).is_file():
            continue  # reported by check_configs, with the other config problems
        data_path = read_config_file(path).get("data_path") or data_path
    return (overrides or {}).get("data_path") or data_path


def check_dataset(dataset, overrides=None, config_files=()):
    """Raise :class:`CompareError` for a dataset that has neither a plugin config nor files.

    The files are looked up the way a run looks them up (``recbole_darec.data.sources.locate``), with the
    ``data_path`` of the config files or the overrides.
    """
    data_path = configured_data_path(config_files, overrides)
    if has_atomic_files(Path(locate(dataset, data_path)) / dataset, dataset):
        return
    choices = dataset_choices(data_path)
    if dataset not in choices:
        raise CompareError(f"unknown dataset '{dataset}': available datasets are {', '.join(choices)}")


def check_configs(rows, dataset, config_files, overrides, variants=None):
    """Build each row's Config once (YAML errors, missing data files, bad keys surface now, not mid-run)."""
    for path in config_files:
        if not Path(path).is_file():
            raise CompareError(f"config file not found: {path}")
    if "seed" in overrides:
        raise CompareError("seed is set per run: use --seeds N or --seed-list A,B,C instead of --seed")
    for row in rows:
        model, row_overrides, row_files = resolve(row, variants or {}, overrides, config_files)
        try:
            isolated_config(model, dataset, row_files, row_overrides)
        except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
            raise CompareError(f"config for {row} on {dataset} does not build: {err}") from err


def check_variant_keys(variants, dataset, config_files, overrides):
    """Refuse a variant key that the model's config does not define (the model would silently ignore it)."""
    for label, variant in variants.items():
        _, _, files = resolve(label, variants, overrides, config_files)  # the row's files after the comparison's
        config = isolated_config(variant["model"], dataset, files, overrides)
        unknown, detail = undefined_keys(variant["overrides"], config)
        if unknown:
            raise CompareError(f"variant '{label}': {detail}")


def validate(models, dataset, config_files=(), overrides=None, variants=None):
    """All checks, cheapest first. ``models`` are row labels: model names or labels of ``variants``."""
    overrides, variants = overrides or {}, variants or {}
    check_models([variants[m]["model"] if m in variants else m for m in models])
    check_dataset(dataset, overrides, config_files)
    used = {label: v for label, v in variants.items() if label in models}
    check_variant_keys(used, dataset, config_files, overrides)
    check_configs(models, dataset, config_files, overrides, variants)
