"""Named config variants of a model as rows of a comparison (ablations, sensitivity, λ robustness).

A variants file maps a row label to a model and the config keys that make it different::

    # configs/variants/darec_lambda.yaml
    DaRec-lam0.3: {model: DaRecLightGCN, darec_lambda: 0.3}
    DaRec-noLocal: {model: DaRecLightGCN, darec_w_local: 0.0}

``run_compare.py --variants=FILE --models=LightGCNBackbone,DaRec-lam0.3,DaRec-noLocal`` then trains each label
with its keys on top of the comparison's shared settings (a variant's key wins over a command-line override),
records it under its label and puts it in the same tables, paired tests and plots as the plain models.

A row may also name YAML files of its own (``config_files: [configs/rlmrec/SGL-yelp.yaml]``, paths as on the
command line); they are read after the comparison's ``--config_files``, so one comparison can give each model the
settings its reference implementation uses without copying them into the variants file.
"""
import re
from pathlib import Path

import yaml

from recbole_darec.report.errors import CompareError
from recbole_darec.yaml_files import YamlFileError, read_yaml_file

LABEL = re.compile(r"^[A-Za-z0-9_.+=-]+$")  # used in file names and comma-separated --models


class VariantsFileError(YamlFileError, CompareError):
    """A missing or broken variants file: a YAML file error, and a comparison error like every other refusal."""


def load_variants(path):
    """Read a variants file -> ``{label: {"model": name, "overrides": {key: value}}}``.

    Raises:
        CompareError naming the file and the label for a missing file, bad YAML, a label with characters other
        than letters, digits and ``_ . + = -``, or an entry without a ``model``.
    """
    path = Path(path)
    data = read_yaml_file(path, yaml.SafeLoader, "variants file", missing="{what} not found: {path}",
                          error=VariantsFileError)
    if not isinstance(data, dict) or not data:
        raise CompareError(f"{path}: expected a mapping 'label: {{model: ..., key: value}}', got {type(data).__name__}")
    variants = {}
    for label, entry in data.items():
        label = str(label)
        if not LABEL.match(label):
            raise CompareError(f"{path}: variant label '{label}' may only use letters, digits and _ . + = -")
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            raise CompareError(f"{path}: variant '{label}' needs 'model: <ModelName>' and its config keys")
        overrides = {k: v for k, v in entry.items() if k not in ("model", "config_files")}
        if "seed" in overrides:
            raise CompareError(f"{path}: variant '{label}' sets seed; seeds are set per run (--seeds)")
        files = entry.get("config_files", [])
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise CompareError(f"{path}: variant '{label}': config_files must be a path or a list of paths")
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            raise CompareError(f"{path}: variant '{label}': config file not found: {', '.join(missing)}")
        variants[label] = {"model": entry["model"], "overrides": overrides}
        if files:
            variants[label]["config_files"] = files
    return variants


def resolve(label, variants, overrides, config_files=()):
    """(model class name, config overrides, config files) of a row: a variant's model, keys and files after the
    comparison's own, or the label itself with the comparison's."""
    if label in variants:
        variant = variants[label]
        return (variant["model"], {**overrides, **variant["overrides"]},
                [*config_files, *variant.get("config_files", [])])
    return label, dict(overrides), list(config_files)
