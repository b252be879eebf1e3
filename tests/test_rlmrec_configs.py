"""configs/rlmrec/<Model>-<dataset>.yaml: every key is one the named model reads, for both RLMRec splits."""
from pathlib import Path

import pytest
import yaml

from recbole_darec.paths import PROPERTIES_DIR, RECBOLE_PROPERTIES_DIR
from recbole_darec.model import get_model

from data_fixtures import write_random_inter

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "rlmrec"
FILES = sorted(CONFIGS.glob("*.yaml"))
DATASETS = ("yelp", "amazon-book")


def split_name(path):
    for dataset in DATASETS:
        if path.stem.endswith("-" + dataset):
            return path.stem[: -len(dataset) - 1], dataset
    raise AssertionError(f"{path.name}: expected <Model>-<dataset>.yaml with dataset in {DATASETS}")


def model_keys(model):
    """Keys the model's properties declare: its plugin YAMLs along the MRO, or RecBole's YAML for a zoo model."""
    cls = get_model(model)
    files = [PROPERTIES_DIR / "model" / f"{klass.__name__}.yaml" for klass in cls.__mro__]
    files.append(RECBOLE_PROPERTIES_DIR / "model" / f"{model}.yaml")
    keys = set()
    for path in files:
        if path.is_file():
            keys |= set(yaml.safe_load(path.read_text()) or {})
    return keys


def test_every_model_has_both_splits():
    pairs = {split_name(p) for p in FILES}
    models = {m for m, _ in pairs}
    assert {"LightGCNBackbone", "SGLBackbone", "LightGCL", "RLMRecConLightGCN", "RLMRecGenLightGCN",
            "LightGCN", "SGL"} <= models
    assert pairs == {(m, d) for m in models for d in DATASETS}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_keys_are_read_by_the_model(path):
    model, _ = split_name(path)
    config = yaml.safe_load(path.read_text())
    assert config, path.name
    unknown = set(config) - model_keys(model)
    assert not unknown, f"{path.name}: {model} declares no {sorted(unknown)}"


@pytest.fixture(scope="module")
def tiny_train(tmp_path_factory):
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_darec import Config

    root = write_random_inter(tmp_path_factory.mktemp("data"), "cfgs", 30, 40, 10, seed=0)
    config = Config(model="LightGCNBackbone", dataset="cfgs", config_dict={
        "data_path": str(root), "device": "cpu", "use_gpu": False, "state": "ERROR", "train_batch_size": 64,
        "load_col": {"inter": ["user_id", "item_id"]}})
    init_seed(2023, True)
    return root, data_preparation(config, create_dataset(config))[0]


@pytest.mark.parametrize("path", [p for p in FILES if split_name(p)[0] in ("LightGCNBackbone", "SGLBackbone",
                                                                             "LightGCL")], ids=lambda p: p.stem)
def test_backbone_configs_build_and_train(tiny_train, path):
    """The values are valid: the model builds with them and one training step gives finite terms."""
    import torch

    from recbole_darec import Config

    root, train = tiny_train
    model_name, _ = split_name(path)
    config = Config(model=model_name, dataset="cfgs", config_file_list=[str(path)], config_dict={
        "data_path": str(root), "device": "cpu", "use_gpu": False, "state": "ERROR", "train_batch_size": 64,
        "load_col": {"inter": ["user_id", "item_id"]}})
    for key, value in yaml.safe_load(path.read_text()).items():
        assert config[key] == value, key
    model = get_model(model_name)(config, train.dataset)
    model.train()
    losses = model.calculate_loss(next(iter(train)))
    assert all(torch.isfinite(t) for t in losses)
