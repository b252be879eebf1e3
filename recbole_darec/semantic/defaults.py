"""Defaults of the LLM side's ``semantic_*`` and ``profile_*`` keys: ``properties/model/SemanticMixin.yaml``.

The plugin Config loads that YAML for every aligned model; a config of another model (the semantic CLI's
default BPR) lacks the keys, and the semantic builder falls back to the same file.
"""
import copy
import functools

import yaml

from recbole_darec.paths import PROPERTIES_DIR


@functools.lru_cache(maxsize=None)
def _yaml_defaults():
    return yaml.safe_load((PROPERTIES_DIR / "model" / "SemanticMixin.yaml").read_text(encoding="utf-8"))


def llm_side_defaults(prefix):
    """``{key: default}`` of the keys that start with ``prefix`` (copies: callers may change them)."""
    return {k: copy.deepcopy(v) for k, v in _yaml_defaults().items() if k.startswith(prefix)}


def with_defaults(config, prefix):
    """The ``prefix*`` keys: the config's value, else the YAML default (RecBole returns None for unset keys)."""
    return {k: config[k] if k in config and config[k] is not None else v
            for k, v in llm_side_defaults(prefix).items()}
