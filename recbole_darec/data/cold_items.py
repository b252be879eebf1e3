"""The ``cold_items`` protocol's split: a seeded share of the items is held out of training entirely.

It works on whatever split the dataset already has (RecBole's own, e.g. ml-100k's random 8/1/1 per user, or the
pre-split ``benchmark_filename`` files of amazon-scientific): of the items with at least one interaction,
``cold_item_ratio`` (rounded, at least one) are drawn with ``cold_item_seed`` (the run's ``seed`` when unset).
Their training interactions move, each by a seeded coin, to validation or test; their validation and test
interactions stay where they were. Warm items' interactions are untouched. Masking at evaluation is RecBole's
(earlier splits masked: train for valid, train + valid for test), and the training sampler never draws a cold item as
a negative, so no loss term (backbone or head) touches a cold item's embedding.

One function, :func:`hold_out_cold_items`, decides the split; the training run (:func:`data_preparation`) and the
LLM-side profiles (``semantic/split.py``) both go through it, so no cold item's text enters a user's profile.
"""
import numpy as np
import torch
from recbole.data.interaction import cat_interactions
from recbole.data.utils import create_samplers, get_dataloader

from recbole_darec.cli_errors import UserError

PROTOCOL = "cold_items"
# the rankings the protocol reports beside the all ranking; their metrics are named "<ranking>_<metric>@k"
# (cold_eval.py), e.g. cold_recall@20
RANKINGS = ("cold", "warm")


def is_cold_protocol(config):
    return config["eval_protocol"] == PROTOCOL


def cold_settings(config):
    """``(ratio, seed)`` of the protocol; an impossible value is refused in one line naming the key."""
    ratio, seed = config["cold_item_ratio"], config["cold_item_seed"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise UserError(f"cold_item_ratio={ratio!r}: must be a number strictly between 0 and 1 "
                        "(the share of items held out of training)")
    if seed is None:
        seed = config["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise UserError(f"cold_item_seed={seed!r}: must be a whole number in [0, 2**32 - 1] (or ~: the run's seed)")
    return float(ratio), seed


def choose_cold_items(item_ids, ratio, seed):
    """Sorted internal ids of the cold items: ``round(ratio * n)`` (at least 1, at most n - 1) of the distinct
    ``item_ids``, drawn with ``seed``."""
    items = np.unique(np.asarray(item_ids, dtype=np.int64))
    if len(items) < 2:
        raise UserError(f"eval_protocol={PROTOCOL}: the dataset has {len(items)} item(s) with interactions; "
                        "at least 2 are needed to hold some out")
    n_cold = min(max(1, int(round(ratio * len(items)))), len(items) - 1)
    return np.sort(np.random.default_rng(seed).choice(items, size=n_cold, replace=False))


def hold_out_cold_items(built, ratio, seed):
    """``([train, valid, test], cold item ids)`` from RecBole's built split (see the module docstring)."""
    train, valid, test = built
    iid = train.iid_field
    every_item = np.concatenate([d.inter_feat[iid].numpy() for d in built])
    cold = choose_cold_items(every_item, ratio, seed)
    is_cold = torch.from_numpy(np.isin(train.inter_feat[iid].numpy(), cold))
    moved = train.inter_feat[is_cold.nonzero().flatten()]
    # a second stream of the same seed: the coins do not depend on how many items were drawn before
    to_test = torch.from_numpy(np.random.default_rng([seed, 1]).random(len(moved)) < 0.5)
    new_train = train.copy(train.inter_feat[(~is_cold).nonzero().flatten()])
    new_valid = valid.copy(cat_interactions([valid.inter_feat, moved[(~to_test).nonzero().flatten()]]))
    new_test = test.copy(cat_interactions([test.inter_feat, moved[to_test.nonzero().flatten()]]))
    return [new_train, new_valid, new_test], torch.from_numpy(cold)


def exclude_from_negatives(train_sampler, cold):
    """Every user's training "used" set gains the cold items, so RecBole's sampler never draws one as a negative."""
    cold = set(cold.tolist())
    for used in train_sampler.used_ids:
        used.update(cold)


def data_preparation(config, dataset):
    """RecBole's ``data_preparation`` with the cold items held out; the validation and test loaders carry
    ``cold_items`` (sorted internal ids), which switches the trainer to :mod:`recbole_darec.cold_eval`."""
    ratio, seed = cold_settings(config)
    built, cold = hold_out_cold_items(dataset.build(), ratio, seed)
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    exclude_from_negatives(train_sampler, cold)
    train_data = get_dataloader(config, "train")(config, built[0], train_sampler, shuffle=config["shuffle"])
    valid_data = get_dataloader(config, "valid")(config, built[1], valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, built[2], test_sampler, shuffle=False)
    for loader in (valid_data, test_data):
        loader.cold_items = cold
    return train_data, valid_data, test_data
