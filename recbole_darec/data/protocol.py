"""Evaluation protocols: RecBole's default and the one the RLMRec/DaRec papers report.

``recbole`` (default): items of earlier splits are excluded from the ranking -- train for valid, train+valid for test.
``rlmrec``: only *training* items are excluded at both stages, so a user's validation items stay candidates at
test time (as in RLMRec's evaluation code). Both evaluate only users with at least one interaction in the split.
``cold_items``: a seeded share of the items is held out of training (:mod:`recbole_darec.data.cold_items`), masking
as ``recbole``; evaluation reports the cold and all rankings (:mod:`recbole_darec.cold_eval`).
"""
from collections import defaultdict

import torch
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import FullSortEvalDataLoader

from recbole_darec.data import cold_items

PROTOCOLS = ("recbole", "rlmrec", cold_items.PROTOCOL)


def check_protocol(config):
    protocol = config["eval_protocol"] or "recbole"
    if protocol not in PROTOCOLS:
        raise ValueError(f"eval_protocol must be one of {PROTOCOLS}, got '{protocol}'")
    return protocol


def train_items_per_user(train_dataset):
    """{internal user id: set of internal item ids} seen in the training split."""
    users = train_dataset.inter_feat[train_dataset.uid_field].numpy()
    items = train_dataset.inter_feat[train_dataset.iid_field].numpy()
    seen = defaultdict(set)
    for user, item in zip(users.tolist(), items.tolist()):
        seen[user].add(item)
    return seen


def use_train_history(eval_loader, train_seen):
    """Make a full-sort loader mask only training items (the ``rlmrec`` protocol)."""
    for uid in eval_loader.uid_list.tolist():
        positives = set(eval_loader.uid2positive_item[uid].tolist())
        history = sorted(train_seen.get(uid, set()) - positives)
        eval_loader.uid2history_item[uid] = torch.tensor(history, dtype=torch.int64)


def data_preparation(config, dataset):
    """RecBole's ``data_preparation`` plus the ``eval_protocol`` option (see module docstring)."""
    protocol = check_protocol(config)
    prepare = cold_items.data_preparation if protocol == cold_items.PROTOCOL else recbole_data_preparation
    train_data, valid_data, test_data = prepare(config, dataset)
    if protocol != "recbole" and not isinstance(test_data, FullSortEvalDataLoader):
        raise ValueError(f"eval_protocol '{protocol}' needs full-sort evaluation (eval_args.mode: full)")
    if protocol == "rlmrec":
        train_seen = train_items_per_user(train_data.dataset)
        use_train_history(valid_data, train_seen)
        use_train_history(test_data, train_seen)
    return train_data, valid_data, test_data
