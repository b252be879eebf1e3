"""Defaults are written once, in YAML: every default left in a constructor's signature must equal the value the
plugin Config loads for it (``properties/model/*.yaml``)."""
import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from recbole_darec import Config
from recbole_darec.model import get_model, plugin_model_names
from recbole_darec.model.backbones.base import GraphBackbone
from recbole_darec.model.common import ModelCommon
from recbole_darec.model.composed.semantic import SemanticMixin
from recbole_darec.semantic.settings import SemanticSettings
from recbole_darec.semantic.profiles import profile_settings


def _config(name):
    extra = {"backbone": "LightGCN"} if name == "DaRec" else {}  # the generic head names a zoo backbone
    return Config(model=name, dataset="ml-100k", config_dict={"state": "WARNING", **extra})


@pytest.mark.parametrize("name", plugin_model_names())
def test_constructor_defaults_equal_the_yaml(name):
    model_class, config = get_model(name), _config(name)
    head_class = getattr(model_class, "head_class", None)
    if head_class is not None:
        signature = inspect.signature(head_class).parameters
        differ = {(head_class.__name__, param) for param, key in model_class.head_keys.items()
                  if key in config.final_config_dict and config[key] != signature[param].default}
        assert not differ, differ
    study_class = getattr(model_class, "study_class", None)
    if study_class is not None:  # the study modes' field defaults, likewise
        fields = {f.name: f.default for f in dataclasses.fields(study_class)}
        differ = {(study_class.__name__, field) for field, key in model_class.study_keys.items()
                  if config[key] != fields[field]}
        assert not differ, differ
    if issubclass(model_class, SemanticMixin):  # the LLM side's keys are all in the model's config
        for key in SemanticSettings.keys() + list(profile_settings({})) + ["log_grad_share"]:
            assert key in config.final_config_dict, key
    if issubclass(model_class, GraphBackbone):  # a backbone has no code defaults left: every key it reads is set
        assert not hasattr(model_class, "defaults")


def test_semantic_builder_falls_back_to_the_same_yaml():
    """A config of a model without the LLM side (the semantic CLI's BPR) gets SemanticMixin.yaml's values."""
    plain, aligned = _config("BPR"), _config("RLMRecConLightGCN")  # DaRec sets its own PCA defaults
    assert "semantic_pca_dim" not in plain.final_config_dict
    assert SemanticSettings.from_config(plain) == SemanticSettings.from_config(aligned)
    assert profile_settings(plain) == profile_settings(aligned)  # ml-100k's templates: dataset_configs/ml-100k.yaml
    assert profile_settings(plain)["profile_item_template"] == ["{movie_title}", "({release_year}).",
                                                                "Genres: {class}."]


def test_variants_accept_llm_side_keys():
    """semantic_pca_dim has a YAML default now, so a variant (or a sweep) may set it."""
    from recbole_darec.report.validate import check_variant_keys

    check_variant_keys({"pca32": {"model": "DaRecLightGCN", "overrides": {"semantic_pca_dim": 32}}}, "ml-100k", (), {})


def test_every_head_parameter_has_a_config_key():
    """A new head parameter without a config key would be unreachable from YAML and the CLI."""
    for name in ("DaRecLightGCN", "RLMRecConLightGCN", "RLMRecGenLightGCN"):
        model_class = get_model(name)
        params = set(inspect.signature(model_class.head_class).parameters) - {"d_cf", "d_llm", "study"}
        assert params == set(model_class.head_keys), name
        if hasattr(model_class, "study_class"):
            assert {f.name for f in dataclasses.fields(model_class.study_class)} == set(model_class.study_keys), name


def _config_reads(source):
    """Lines that read a key straight from a ``config`` (``config[...]``, ``config.get(...)``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        target = node.value if isinstance(node, ast.Subscript) else (
            node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get" else None)
        if isinstance(target, ast.Name) and target.id == "config":
            found.append(node.lineno)
    return found


def test_model_code_reads_its_keys_through_param_only():
    """One way a model reads a key (ModelCommon.param): a missing default is refused in one line naming the YAML."""
    model_dir = Path(inspect.getfile(ModelCommon)).parent
    straight = {str(path.relative_to(model_dir)): lines for path in sorted(model_dir.rglob("*.py"))
                if path.name != "common.py" and (lines := _config_reads(path.read_text(encoding="utf-8")))}
    assert straight == {}
    assert _config_reads("a = config['k']\nb = config.get('k')\nc = self.param(config, 'k')\n") == [1, 2]


def test_a_key_without_value_is_refused_naming_the_yaml_files():
    with pytest.raises(KeyError, match=r"DaRecLightGCN: config key 'darec_k' has no value; its default belongs in "
                                       r"properties/model/DaRecMixin.yaml or .*LightGCNBackbone.yaml"):
        get_model("DaRecLightGCN").param({"darec_k": None}, "darec_k")
    assert get_model("DaRec").param({}, "backbone", optional=True) is None


def test_semantic_settings_hold_every_semantic_key_of_the_yaml():
    """One field per semantic_* key: a key added to SemanticMixin.yaml without a field fails from_config."""
    from recbole_darec.semantic.defaults import llm_side_defaults

    assert SemanticSettings.keys() == list(llm_side_defaults("semantic_"))
    settings = SemanticSettings.from_config(_config("DaRecLightGCN"))
    assert settings.pca_dim == 256 and settings.text_control == "none" and settings.control() is None
    assert settings.encode_device() == settings.run_device  # semantic_device ~: the run's device
