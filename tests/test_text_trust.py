"""DaRec's trust in the text (``darec_text_trust: auto``): measured on the training graph, 0 for text that says
nothing, 1 for text that clearly agrees with who consumes what."""
import pytest
import torch

from recbole_darec.model.alignment.text_trust import (
    FULL_TRUST_EXCESS, TRUST_FLOOR, TextAgreement, text_agreement, trust_from_agreement,
)
from recbole_darec.single_run import build
from recbole_darec import Config


def _clustered_graph(n_clusters=20, items_per_cluster=30, users=600, per_user=8, noise=1.0, seed=0):
    """Generated stand-in data (not a dataset): items in clusters, each user consumes items of one cluster, an
    item's "text" row is its cluster's direction plus noise."""
    gen = torch.Generator().manual_seed(seed)
    n_items = n_clusters * items_per_cluster
    centres = torch.randn(n_clusters, 16, generator=gen)
    rows = centres.repeat_interleave(items_per_cluster, 0) + noise * torch.randn(n_items, 16, generator=gen)
    cluster = torch.randint(n_clusters, (users,), generator=gen)
    picks = torch.randint(items_per_cluster, (users, per_user), generator=gen)
    item_ids = (cluster.unsqueeze(1) * items_per_cluster + picks).flatten()
    user_ids = torch.arange(users).repeat_interleave(per_user)
    return rows, torch.ones(n_items, dtype=torch.bool), user_ids, item_ids


def _shuffled(rows, share, seed=1):
    """The rows of a random ``share`` of the items moved among themselves (the permuted / half controls)."""
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(rows), generator=gen)[: int(share * len(rows))]
    out = rows.clone()
    out[chosen] = rows[chosen.roll(-1)]
    return out


def test_text_that_matches_the_graph_is_trusted_and_shuffled_text_is_not():
    rows, mask, users, items = _clustered_graph()
    real = text_agreement(rows, mask, users, items)
    assert real.auc > 0.8 and abs(real.null_mean - 0.5) < 0.01 and real.triples > 90_000
    assert trust_from_agreement(real) == 1.0
    permuted = text_agreement(_shuffled(rows, 1.0), mask, users, items)
    assert abs(permuted.excess) < 4 * permuted.null_std + 0.005 and trust_from_agreement(permuted) == 0.0
    half = text_agreement(_shuffled(rows, 0.5), mask, users, items)
    assert permuted.auc < half.auc < real.auc


def test_weak_text_gets_a_share_between_zero_and_one():
    rows, mask, users, items = _clustered_graph(noise=4.2)  # the cluster direction partly drowned in noise
    weak = text_agreement(rows, mask, users, items)
    assert 0.0 < trust_from_agreement(weak) < 1.0
    signal = weak.excess - 3 * weak.null_std
    assert trust_from_agreement(weak) == pytest.approx((signal - TRUST_FLOOR) / (FULL_TRUST_EXCESS - TRUST_FLOOR))
    weaker = text_agreement(*_clustered_graph(noise=6.0))  # some agreement, but below the floor: none of it trusted
    assert weaker.excess > 5 * weaker.null_std and trust_from_agreement(weaker) == 0.0


def test_the_measurement_is_seeded_and_leaves_the_global_random_stream_alone():
    rows, mask, users, items = _clustered_graph()
    state = torch.random.get_rng_state()
    first = text_agreement(rows, mask, users, items)
    assert torch.equal(state, torch.random.get_rng_state())
    assert first == text_agreement(rows, mask, users, items)
    assert first != text_agreement(rows, mask, users, items, seed=1)


def test_items_without_text_and_users_with_one_item_are_left_out():
    rows, mask, users, items = _clustered_graph()
    mask[::2] = False  # half the items have no profile: none of them may be drawn
    rows[~mask] = 1e6  # would dominate every cosine if it were read
    agreement = text_agreement(rows, mask, users, items)
    assert trust_from_agreement(agreement) == 1.0
    lonely = text_agreement(rows, mask, torch.arange(10), torch.arange(10) * 2 + 1)  # one item per user
    assert lonely == TextAgreement(0.5, 0.5, 0.0, 0) and trust_from_agreement(lonely) == 0.0


def test_ml100k_titles_are_trusted_and_the_same_titles_shuffled_are_not(quick_config):
    """On the real data: the model measures its trust on its training split, and the same item rows moved to other
    items (what ``semantic_text_control: permuted`` gives the items) get none."""
    config = Config(model="DaRecLightGCN", dataset="ml-100k", config_dict=quick_config)
    _, (train_data, *_), model, _ = build(config)
    inter = train_data.dataset.inter_feat
    assert len(inter) < 0.9 * 100_000  # the training split, not the whole file
    measured = text_agreement(model.item_semantic, model.item_semantic_mask, inter["user_id"], inter["item_id"])
    assert model.text_agreement == measured and model.head.trust == 1.0 and measured.excess > FULL_TRUST_EXCESS
    has_text = torch.nonzero(model.item_semantic_mask).flatten()
    rows = model.item_semantic.clone()
    rows[has_text] = model.item_semantic[has_text.roll(-1)]
    shuffled = text_agreement(rows, model.item_semantic_mask, inter["user_id"], inter["item_id"])
    assert trust_from_agreement(shuffled) == 0.0


def test_a_fixed_trust_scales_lambda_and_skips_the_measurement(quick_config):
    config = Config(model="DaRecLightGCN", dataset="ml-100k", config_dict={**quick_config, "darec_text_trust": 0.5})
    _, _, model, _ = build(config)
    assert model.text_agreement is None and model.head.trust == 0.5
    assert model.head.effective_lambda() == pytest.approx(0.5 * model.head.lam)
