"""Which config keys exist, and refusal of the ones that do not (a typo would otherwise train with the default).

Known keys are read at run time from every YAML that can define a key -- RecBole's properties (overall, every
model, every dataset, quick-start presets) and the plugin's ``properties/``, ``properties/model/`` and
``dataset_configs/`` -- plus RecBole's argument lists, the DaRec head keys that default to the head's signature
and the few keys RecBole 1.2.1 reads without any YAML default (``RECBOLE_CODE_KEYS``).

A user-defined key (read by your own model) is let through by ``allow_unknown_keys: [my_key]`` (or ``True`` for
all) in a config file, ``config_dict`` or on the command line.
"""
import difflib
import functools
from pathlib import Path

import recbole.utils.argument_list as argument_list
import yaml

from recbole_darec import paths
from recbole_darec.model.composed.darec import HEAD_KEYS, STUDY_KEYS

ESCAPE_KEY = "allow_unknown_keys"

# Read by RecBole 1.2.1's code with no YAML default (its sequential/context models, distributed training and the
# configurator itself); found by searching its sources for config["..."] reads.
RECBOLE_CODE_KEYS = frozenset({
    "CROP_ITEM_SEQ", "CROP_ITEM_SEQ_LEN", "INVERSE_ITEM_SEQ", "MASK_INDEX", "MASK_ITEM_SEQ", "MODEL_INPUT_TYPE",
    "MODEL_TYPE", "NEG_ITEMS", "POS_ITEMS", "REORDER_ITEM_SEQ", "cin", "contrast", "dataset", "device", "encoding",
    "eta", "eval_type", "feature_num", "has_residual", "ip", "local_rank", "model", "norm", "nproc", "offset",
    "port", "sim", "single_spec", "tail_ratio", "test_neg_sample_args", "token_num_threshold", "use_filter",
    "valid_neg_sample_args", "verbose", "world_size", "xgb_early_stopping_rounds",
})
# Read by the plugin with a code default and no YAML entry.
PLUGIN_CODE_KEYS = frozenset({ESCAPE_KEY, "backbone", "allow_download",
                              "missing_data_hint", "resume_from",
                              "config_files"})  # config_files: the CLIs' flag, also seen by RecBole's parser


def did_you_mean(unknown, known, n=3):
    """``"'lamda' (did you mean lambda?); 'x'"``: each unknown name with its closest known names."""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), list(known), n=n)
        parts.append(f"'{name}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return "; ".join(parts)


def undefined_keys(keys, config):
    """``(names, message)``: the ``keys`` a built ``config`` does not define, and a did-you-mean line naming them."""
    known = config.final_config_dict
    unknown = [k for k in keys if k not in known]
    return unknown, f"{did_you_mean(unknown, known)}: not a config key of {config['model']} on {config['dataset']}"


def _yaml_keys(folder, recursive=False):
    keys = set()
    for path in sorted(Path(folder).glob("**/*.yaml" if recursive else "*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue  # a broken shipped file is reported where it is loaded, not here
        if isinstance(data, dict):
            keys.update(str(k) for k in data)
    return keys


@functools.lru_cache(maxsize=None)
def _static_known_keys(plugin_files_stamp):
    keys = set(RECBOLE_CODE_KEYS) | PLUGIN_CODE_KEYS
    keys |= _yaml_keys(paths.RECBOLE_PROPERTIES_DIR, recursive=True)
    for name in dir(argument_list):
        if isinstance(getattr(argument_list, name), list):
            keys.update(getattr(argument_list, name))
    keys |= _yaml_keys(paths.PROPERTIES_DIR, recursive=True) | _yaml_keys(paths.DATASET_CONFIG_DIR)
    keys |= set(HEAD_KEYS.values()) | set(STUDY_KEYS.values())
    return frozenset(keys)


def known_keys():
    """Every config key some YAML or the code defines (re-read when a plugin YAML file is added or changed)."""
    stamp = tuple((str(p), p.stat().st_mtime_ns) for folder in (paths.PROPERTIES_DIR, paths.DATASET_CONFIG_DIR)
                  for p in sorted(Path(folder).glob("**/*.yaml")))
    return _static_known_keys(stamp)


def allowed_extra_keys(external):
    """The user's escape hatch: ``allow_unknown_keys`` as a list of names, one name, or True (all)."""
    value = external.get(ESCAPE_KEY)
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        return None  # everything allowed
    if isinstance(value, str):
        return {value}
    return {str(v) for v in value} if isinstance(value, (list, tuple, set)) else set()


def unknown_keys(keys, external=None, known=None):
    """The names in ``keys`` that no YAML or code defines and the escape hatch does not allow."""
    allowed = allowed_extra_keys(external or {})
    if allowed is None:
        return []
    known = known_keys() if known is None else known
    return [k for k in keys if k not in known and k not in allowed]
