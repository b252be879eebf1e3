"""eval_protocol cold_items: the split (held out, seeded, ratio, nothing lost), no leakage into profiles, the two
rankings and the diagnostics against hand-computed cases, the score-scale fits, and bad values refused in one line."""
import numpy as np
import pytest
import torch

from recbole_darec import Config
from recbole_darec.cli_errors import UserError
from recbole_darec.model.composed import cold_scale
from recbole_darec.semantic.split import pairs_from_dataset, train_fingerprint, training_interactions
from recbole_darec.single_run import build

from fixed_scores import FixedScoresModel


def cold_config(quick_config, **extra):
    return Config(model="LightGCNBackbone", dataset="ml-100k",
                  config_dict={**quick_config, "eval_protocol": "cold_items", **extra})


def pairs(dataset):
    inter = dataset.inter_feat
    return set(zip(inter[dataset.uid_field].tolist(), inter[dataset.iid_field].tolist()))


@pytest.fixture(scope="module")
def ml100k_split(tmp_path_factory):
    quick = {"epochs": 1, "state": "WARNING", "show_progress": False, "embedding_size": 8,
             "checkpoint_dir": str(tmp_path_factory.mktemp("saved"))}
    return {seed: build(cold_config(quick, cold_item_seed=seed)) for seed in (7, 8)}


def test_cold_items_are_held_out_of_training_and_all_evaluated(ml100k_split):
    dataset, (train, valid, test), _, _ = ml100k_split[7]
    cold = valid.cold_items
    assert torch.equal(cold, test.cold_items)
    items_with_inter = torch.unique(dataset.inter_feat[dataset.iid_field])
    assert len(cold) == round(0.2 * len(items_with_inter)) == 336  # ml-100k: 1682 items
    assert not np.isin(train.dataset.inter_feat[dataset.iid_field].numpy(), cold.numpy()).any()
    # nothing lost, nothing duplicated: the three splits are the dataset's interactions
    every = pairs(train.dataset) | pairs(valid.dataset) | pairs(test.dataset)
    assert len(train.dataset) + len(valid.dataset) + len(test.dataset) == len(dataset) == len(every)
    # every cold interaction is in validation or test, and both get some
    cold_set = set(cold.tolist())
    in_valid = sum(i in cold_set for _, i in pairs(valid.dataset))
    in_test = sum(i in cold_set for _, i in pairs(test.dataset))
    n_cold = int(np.isin(dataset.inter_feat[dataset.iid_field].numpy(), cold.numpy()).sum())
    assert in_valid + in_test == n_cold and in_valid > 0.3 * n_cold and in_test > 0.3 * n_cold
    # the training sampler never offers a cold item as a negative
    users = train.dataset.inter_feat[dataset.uid_field][:500].numpy()
    negatives = train._sampler.sample_by_user_ids(users, None, 20)
    assert not np.isin(negatives.numpy(), cold.numpy()).any()


def test_cold_items_are_seeded(ml100k_split, quick_config):
    again = build(cold_config(quick_config, cold_item_seed=7)).splits[1].cold_items
    assert torch.equal(again, ml100k_split[7].splits[1].cold_items)
    assert not torch.equal(ml100k_split[7].splits[1].cold_items, ml100k_split[8].splits[1].cold_items)


def test_profiles_use_the_cold_split_training_set(ml100k_split, quick_config):
    """The LLM side's replay of the split is the run's training set: no cold item can enter a user profile."""
    dataset, (train, _, _), _, _ = ml100k_split[7]
    profile_pairs = training_interactions(cold_config(quick_config, cold_item_seed=7))
    cold_tokens = set(dataset.field2id_token[dataset.iid_field][ml100k_split[7].splits[1].cold_items.numpy()])
    assert not set(profile_pairs["item"]) & cold_tokens
    assert train_fingerprint(profile_pairs) == train_fingerprint(pairs_from_dataset(train.dataset))


# -- the two rankings on a hand-built split ----------------------------------------------------------------------
# Item scores shared by every user; i5 and i6 are declared cold below.
FIXED = {"i2": 6.0, "i5": 5.5, "i3": 5.0, "i1": 4.0, "i4": 3.0, "i6": 0.0}


class FixedScores(FixedScoresModel):
    """Scores items by FIXED for every user; ``scores_items_by_text`` makes cold_eval take its cold scores as they
    are (the TextOnly path)."""

    SCORES = FIXED
    scores_items_by_text = True


class NoColdScores(FixedScores):
    """The same scores, but a model with no way to score a new item (LightGCN, Pop)."""

    scores_items_by_text = False


def write_split(root):
    """u1: train i1, valid i2, test i3 + i5.  u2: train i4, valid i3, test i2 + i6.  u3: train i2, valid i1."""
    folder = root / "coldproto"
    folder.mkdir(parents=True)
    header = "user_id:token\titem_id:token\n"
    splits = {"train": ["u1\ti1", "u2\ti4", "u3\ti2"], "valid": ["u1\ti2", "u2\ti3", "u3\ti1"],
              "test": ["u1\ti3", "u1\ti5", "u2\ti2", "u2\ti6"]}
    for name, rows in splits.items():
        (folder / f"coldproto.{name}.inter").write_text(header + "\n".join(rows) + "\n")


def hand_test_result(tmp_path, quick_config, model):
    """Build on the recbole protocol's split, then declare i5 and i6 cold on the test loader (the cold split's
    draw is tested above; here the items are fixed so the numbers can be worked out by hand)."""
    write_split(tmp_path)
    config = Config(model=model, dataset="coldproto", config_dict={
        **quick_config, "data_path": str(tmp_path), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]}, "metrics": ["Recall", "NDCG"], "topk": [1, 2],
        "valid_metric": "Recall@2"})
    dataset, (_, _, test_data), _, trainer = build(config)
    test_data.cold_items = torch.tensor(sorted(dataset.token2id("item_id", ["i5", "i6"]).tolist()))
    return trainer.evaluate(test_data, load_best_model=False)


def test_rankings_of_a_model_that_scores_cold_items(tmp_path, quick_config):
    result = hand_test_result(tmp_path, quick_config, FixedScores)
    # Masked (train + valid): u1 i1, i2; u2 i4, i3.
    # all: u1 i5 i3 | u2 i2 i5 -> recall@1: u1 i5 (1/2), u2 i2 (1/2) = 0.5; recall@2: u1 2/2, u2 1/2 = 0.75
    assert result["recall@1"] == pytest.approx(0.5) and result["recall@2"] == pytest.approx(0.75)
    # warm positives only: u1 {i3} missed at 1, hit at 2; u2 {i2} hit at 1
    assert result["warm_recall@1"] == pytest.approx(0.5) and result["warm_recall@2"] == pytest.approx(1.0)
    # cold ranking (i5 > i6): u1 {i5} hit at 1; u2 {i6} second -> recall@1 0.5, @2 1.0; ndcg@2 (1 + 1/log2(3)) / 2
    assert result["cold_recall@1"] == pytest.approx(0.5) and result["cold_recall@2"] == pytest.approx(1.0)
    assert result["cold_ndcg@2"] == pytest.approx((1 + 1 / np.log2(3)) / 2, abs=1e-4)
    # i5 holds one of the two top-2 slots of both users
    assert result["cold_slots@2"] == pytest.approx(0.5) and result["cold_users@2"] == pytest.approx(1.0)


def test_a_model_that_cannot_score_cold_items_ranks_them_below_every_warm_item(tmp_path, quick_config):
    result = hand_test_result(tmp_path, quick_config, NoColdScores)
    # all: u1's warm candidates i3, i4 come before the cold ones -> top-2 {i3, i4}: 1/2; u2 {i2, i1}: 1/2.
    #      Top-1: u1 i3 (1/2), u2 i2 (1/2).
    assert result["recall@1"] == pytest.approx(0.5) and result["recall@2"] == pytest.approx(0.5)
    assert result["warm_recall@1"] == pytest.approx(1.0)
    assert result["cold_slots@2"] == 0.0 and result["cold_users@2"] == 0.0
    # the cold ranking is a seeded random order of i5 and i6 (the same on a second build): both found by rank 2
    assert result["cold_recall@2"] == pytest.approx(1.0)
    assert result == hand_test_result(tmp_path / "again", quick_config, NoColdScores)


# -- the score scale ------------------------------------------------------------------------------------------------
def test_median_norm_scale_is_the_median_warm_row_length():
    item_all = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [6.0, 8.0], [100.0, 0.0]])
    warm = torch.tensor([False, True, True, True, False])
    slope, shift = cold_scale.median_norm(item_all, warm)
    assert float(slope) == 5.0 and float(shift) == 0.0


def test_affine_scale_recovers_a_known_map():
    """Real rows are 2 x the mapped rows plus an offset a user's row turns into +1: the fit must return (2, 1)."""
    gen = torch.Generator().manual_seed(0)
    n_users, n_items, d = 30, 40, 4
    users = torch.randn(n_users, d, generator=gen)
    users[:, -1] = 1.0  # a constant last coordinate ...
    unit = torch.nn.functional.normalize(torch.randn(n_items, d, generator=gen), dim=1)
    unit[:, -1] = 0.0
    item_all = 2 * unit
    item_all[:, -1] = 1.0  # ... meets an item coordinate of 1: every real score is 2 x mapped + 1
    warm = torch.ones(n_items, dtype=torch.bool)
    warm[0] = False
    pair_users = torch.randint(n_users, (200,), generator=gen)
    pair_items = torch.randint(n_items, (200,), generator=gen)
    slope, shift = cold_scale.affine(users, item_all, unit, warm, pair_users, pair_items)
    assert float(slope) == pytest.approx(2.0, abs=1e-5) and float(shift) == pytest.approx(1.0, abs=1e-5)


# -- bad values -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, value, words", [
    ("cold_item_ratio", 1.5, "cold_item_ratio=1.5: must be a number strictly between 0 and 1"),
    ("cold_item_ratio", 0, "cold_item_ratio=0: must be a number strictly between 0 and 1"),
    ("cold_item_seed", -3, "cold_item_seed=-3: must be a whole number"),
    ("cold_scale", "mean", "cold_scale='mean': must be one of median_norm, affine"),
])
def test_bad_values_are_refused_in_one_line(quick_config, key, value, words):
    with pytest.raises(UserError) as info:
        cold_config(quick_config, **{key: value})
    assert words in str(info.value) and "\n" not in str(info.value)


def test_the_cold_and_warm_rankings_may_drive_early_stopping_under_the_protocol_only(quick_config):
    config = cold_config(quick_config, valid_metric="cold_ndcg@10")
    assert config["valid_metric"] == "cold_ndcg@10"
    with pytest.raises(UserError, match="cold_recall@7.*is not among the evaluated metrics.*cold_recall@10"):
        cold_config(quick_config, valid_metric="cold_recall@7")
    with pytest.raises(UserError, match="warm ranking exists only under eval_protocol=cold_items"):
        Config(model="LightGCNBackbone", dataset="ml-100k", config_dict=dict(quick_config, valid_metric="warm_recall@10"))


# -- the text-only baseline -----------------------------------------------------------------------------------------
def test_text_only_scores_the_cosine_of_the_users_mean_training_item_row(quick_config):
    dataset, (train, _, _), model, _ = build(Config(model="TextOnly", dataset="ml-100k", config_dict={
        **quick_config, "eval_protocol": "cold_items", "cold_item_seed": 7}))
    inter = train.dataset.inter_feat
    items = torch.nn.functional.normalize(model.item_semantic.float(), dim=1)
    for user in (1, 50, 300):
        seen = inter[dataset.iid_field][inter[dataset.uid_field] == user]
        seen = seen[model.item_semantic_mask[seen]]
        mean = items[seen].mean(0)
        expected = torch.nn.functional.normalize(mean, dim=0) @ items.t()
        got = model.full_sort_predict({model.USER_ID: torch.tensor([user])})
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert model.item_semantic.shape[1] == 384  # the encoder's full width: no aligned model's PCA
