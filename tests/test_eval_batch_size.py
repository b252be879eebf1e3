"""Full-ranking metrics must not depend on how many users are scored per evaluation batch."""
import pytest
from recbole.data import create_dataset
from recbole.utils import init_seed

from recbole_darec import Config
from recbole_darec.data.protocol import data_preparation
from recbole_darec.model import get_model
from recbole_darec.trainer import get_plugin_trainer

from data_fixtures import write_random_inter

N_USERS, N_ITEMS = 60, 80


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_random_inter(tmp_path_factory.mktemp("data"), "ebs", N_USERS, N_ITEMS, (10, 25), seed=1)


def loaders(data_dir, protocol, **overrides):
    config = Config(model="LightGCNBackbone", dataset="ebs", config_dict={
        "data_path": str(data_dir), "device": "cpu", "use_gpu": False, "state": "ERROR", "seed": 2023,
        "load_col": {"inter": ["user_id", "item_id"]}, "eval_protocol": protocol, **overrides})
    init_seed(config["seed"], True)
    return config, data_preparation(config, create_dataset(config))


def test_default_scores_many_users_per_batch(data_dir):
    config, (_, valid, _) = loaders(data_dir, "recbole")
    assert config["eval_batch_size"] == 1048576
    assert valid.step == 1048576 // valid._dataset.item_num  # users per batch (RecBole's 4096 gives 1 on yelp)


@pytest.mark.parametrize("protocol", ["recbole", "rlmrec"])
def test_metrics_do_not_depend_on_eval_batch_size(data_dir, protocol):
    config, (train, valid, test) = loaders(data_dir, protocol)
    init_seed(config["seed"], True)
    model = get_model("LightGCNBackbone")(config, train.dataset)  # one set of weights for every batch size
    trainer = get_plugin_trainer(config)(config, model)
    results = []
    for users_per_batch in (None, 1, 7):  # the default (all users at once here), one user, an uneven split
        if users_per_batch is None:
            valid_b, test_b = valid, test
        else:
            item_num = train.dataset.item_num
            _, (_, valid_b, test_b) = loaders(data_dir, protocol, eval_batch_size=users_per_batch * item_num)
            assert valid_b.step == users_per_batch
        results.append([trainer.evaluate(loader, load_best_model=False) for loader in (valid_b, test_b)])
    assert results[0][0]["recall@20"] > 0
    assert results[1] == results[0] and results[2] == results[0]
