"""Unknown config keys are refused with a suggestion; every key a shipped YAML uses is known."""
import re
from pathlib import Path

import pytest
import yaml

import recbole_darec  # noqa: F401  (compat shims)
from recbole_darec.cli_errors import UserError
from recbole_darec.config import Config
from recbole_darec.config_keys import known_keys, unknown_keys

REPO = Path(__file__).resolve().parents[1]


def _shipped_keys():
    """(file, key) for every config key a shipped YAML sets."""
    out = []
    for folder in ("configs", "dataset_configs", "properties"):
        for path in sorted((REPO / folder).glob("**/*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if path.parent.name == "variants":  # label -> {model, keys}
                out += [(path, k) for entry in data.values() for k in entry if k != "model"]
            else:
                out += [(path, k) for k in data]
    for path in sorted((REPO / "hyper").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out += [(path, k) for section in ("space", "fixed") for k in (data.get(section) or {})]
    return out


def test_every_shipped_yaml_key_is_known():
    keys = _shipped_keys()
    assert len(keys) > 50
    bad = [(str(p.relative_to(REPO)), k) for p, k in keys if unknown_keys([k])]
    assert not bad, bad


def test_typo_is_refused_with_a_suggestion():
    with pytest.raises(UserError, match=r"'darec_lamda' \(did you mean darec_lambda"):
        Config("DaRecLightGCN", "ml-100k", config_dict={"darec_lamda": 0.1})


def test_escape_hatch_lets_user_keys_through():
    config = Config("LightGCNBackbone", "ml-100k", config_dict={"my_key": 3, "allow_unknown_keys": ["my_key"]})
    assert config["my_key"] == 3
    assert Config("LightGCNBackbone", "ml-100k", config_dict={"other": 1, "allow_unknown_keys": True})["other"] == 1


def test_new_yaml_keys_are_picked_up(tmp_path, monkeypatch):
    import recbole_darec.paths as paths

    folder = tmp_path / "dataset_configs"
    folder.mkdir()
    (folder / "extra.yaml").write_text("brand_new_key: 1\n", encoding="utf-8")
    assert "brand_new_key" not in known_keys()
    monkeypatch.setattr(paths, "DATASET_CONFIG_DIR", folder)
    assert "brand_new_key" in known_keys()


@pytest.mark.parametrize("overrides, culprit", [
    ({"epochs": 0}, "epochs=0"),
    ({"epochs": -1}, "epochs=-1"),
    ({"darec_k": 9, "darec_sample_size": 8}, "darec_k=9 > darec_sample_size=8"),
    ({"darec_k": 300, "train_batch_size": 100}, "darec_k=300"),
])
def test_impossible_values_are_refused(overrides, culprit):
    with pytest.raises(UserError, match=culprit.replace("(", r"\(")):
        Config("DaRecLightGCN", "ml-100k", config_dict=overrides)


def test_yaml_syntax_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\n", encoding="utf-8")
    with pytest.raises(UserError, match=str(bad)):
        Config("LightGCNBackbone", "ml-100k", config_file_list=[str(bad)])


def test_batch_with_fewer_nodes_than_k_warns_once_with_the_numbers(caplog):
    import logging

    import torch

    from recbole_darec.model.alignment import DaRecHead

    head = DaRecHead(d_cf=8, d_llm=8, n_clusters=4, sample_size=16)
    head.train()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            out = head(torch.randn(3, 8, requires_grad=True), torch.randn(3, 8), n_users=1)
    assert float(out["darec_local"]) == 0.0
    warnings = [r.getMessage() for r in caplog.records if "local alignment skipped" in r.getMessage()]
    assert len(warnings) == 1 and "K=4" in warnings[0] and "3 rows" in warnings[0]


@pytest.mark.parametrize("model, overrides, culprit", [
    ("DaRecLightGCN", {"darec_lambda": -1}, "darec_lambda=-1"),
    ("DaRecLightGCN", {"head_interval": 0}, "head_interval=0"),
    ("DaRecLightGCN", {"darec_score_with": "both"}, "darec_score_with='both'"),
    ("DaRecLightGCN", {"darec_text_trust": 1.5}, "darec_text_trust=1.5"),
    ("DaRecLightGCN", {"darec_text_trust": "sometimes"}, "darec_text_trust='sometimes'"),
    ("DaRecSGL", {"darec_global_mode": "l2"}, "darec_global_mode='l2'"),
    ("DaRecLightGCN", {"darec_omega_items": "negatives"}, "darec_omega_items='negatives'"),
    ("DaRecLightGCN", {"darec_omega_items": "batch", "darec_global_mode": "crossview"}, "darec_global_mode='crossview'"),
    ("RLMRecConLightGCN", {"kd_tau": 0}, "kd_tau=0"),
    ("RLMRecGenLightGCN", {"mask_ratio": 1.5}, "mask_ratio=1.5"),
])
def test_head_settings_are_refused_by_the_config_before_any_data_is_loaded(model, overrides, culprit):
    """The heads' own checks run when the Config is made (the head is built on the meta device), not after the
    dataset is loaded and the LLM-side tables are encoded."""
    with pytest.raises(UserError, match=re.escape(culprit)):
        Config(model, "ml-100k", config_dict=overrides)


def test_the_head_probe_allocates_nothing_and_draws_no_random_number():
    import torch

    state = torch.get_rng_state()
    Config("DaRecLightGCN", "ml-100k", config_dict={"embedding_size": 100000})  # a real 100000^2 projector: 40 GB
    assert torch.equal(state, torch.get_rng_state())
