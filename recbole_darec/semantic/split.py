"""The training interactions a user profile may use, exactly as the training run will see them.

* Benchmark-file datasets (``benchmark_filename: [train, valid, test]``): the ``<ds>.<train>.inter`` file.
* Everything else (ml-100k: ``RS`` 8/1/1 per user, random order): RecBole decides the split inside
  ``data_preparation`` by shuffling with torch's global RNG right after ``init_seed(config['seed'])``. We replay
  that: ``init_seed`` -> ``create_dataset`` -> ``dataset.build()`` with the run's own config (minus the semantic
  keys, which don't change ids, filtering or the split), read ``train.inter_feat`` and map ids back to tokens.
  All RNG states are saved and restored around this, so the real run's split is untouched. The manifest keeps a
  fingerprint of these pairs and :func:`recbole_darec.semantic.loading.register_semantic_buffers` compares it
  with the model's training dataset, so a mismatch (a profile built on another split) is caught, not trained on.
* ``eval_protocol: cold_items`` (either kind of dataset): the replay above, then the same hold-out of the cold items
  the run makes (:func:`recbole_darec.data.cold_items.hold_out_cold_items`): no cold item enters a profile.
"""
import contextlib
import copy
import hashlib
import logging
import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from recbole.data import create_dataset
from recbole.utils import init_seed

from recbole_darec.data.cold_items import cold_settings, hold_out_cold_items, is_cold_protocol
from recbole_darec.semantic.profiles import read_atomic

SEMANTIC_SUFFIXES = ("useremb", "itememb")


@contextlib.contextmanager
def preserved_rng():
    """Restore python/numpy/torch (and CUDA) RNG states on exit, whatever ran inside."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def without_semantic_keys(config):
    """A shallow copy of a RecBole Config with the keys :func:`apply_semantic_config` adds taken out again."""
    cfg = copy.copy(config)
    cfg.final_config_dict = copy.deepcopy(config.final_config_dict)
    d = cfg.final_config_dict
    if d.get("additional_feat_suffix"):
        d["additional_feat_suffix"] = [s for s in d["additional_feat_suffix"] if s not in SEMANTIC_SUFFIXES] or None
    if isinstance(d.get("load_col"), dict):
        for suffix in SEMANTIC_SUFFIXES:
            d["load_col"].pop(suffix, None)
    for key, field in (("alias_of_user_id", "uid"), ("alias_of_item_id", "iid")):
        if d.get(key):
            d[key] = [f for f in d[key] if f != field] or None
    if isinstance(d.get("preload_weight"), dict):
        d["preload_weight"] = {k: v for k, v in d["preload_weight"].items() if k not in ("uid", "iid")} or None
    return cfg


def _recbole_train_pairs(config):
    cfg = without_semantic_keys(config)
    cfg.final_config_dict["save_dataset"] = False  # the replay must leave no dataset file in checkpoint_dir
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # the replayed load would otherwise print the dataset summary twice
    try:
        with preserved_rng():
            init_seed(cfg["seed"], cfg["reproducibility"])
            dataset = create_dataset(cfg)
            built = dataset.build()
            if is_cold_protocol(cfg):
                built, _ = hold_out_cold_items(built, *cold_settings(cfg))
            train = built[0]
    finally:
        logger.setLevel(level)
    return pairs_from_dataset(train, with_time=True)


def pairs_from_dataset(dataset, with_time=False):
    """``DataFrame(user, item[, time])`` of a RecBole dataset's interactions, ids mapped back to tokens."""
    inter = dataset.inter_feat
    users = np.asarray(inter[dataset.uid_field])
    items = np.asarray(inter[dataset.iid_field])
    df = pd.DataFrame({"user": dataset.field2id_token[dataset.uid_field][users].astype(str),
                       "item": dataset.field2id_token[dataset.iid_field][items].astype(str)})
    if with_time and dataset.time_field and dataset.time_field in dataset.field2type:
        df["time"] = np.asarray(inter[dataset.time_field], dtype=np.float64)
    return df


def training_interactions(config):
    """Training interactions as ``DataFrame(user, item[, time])`` of tokens (see the module docstring)."""
    bench = config["benchmark_filename"]
    if not bench or is_cold_protocol(config):
        return _recbole_train_pairs(config)
    path = Path(config["data_path"]) / f"{config['dataset']}.{bench[0]}.inter"
    df, _ = read_atomic(path, sep=config["field_separator"])
    uid, iid, tfield = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["TIME_FIELD"]
    out = pd.DataFrame({"user": df[uid], "item": df[iid]})
    if tfield in df.columns:
        out["time"] = pd.to_numeric(df[tfield])
    return out


def train_fingerprint(pairs):
    """Order-independent sha256 of the (user, item) token pairs."""
    lines = sorted(pairs["user"].astype(str) + "\t" + pairs["item"].astype(str))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def known_tokens(config):
    """``{"user": set, "item": set}`` of the ids in the dataset's interaction files and ``.user``/``.item`` files."""
    root, ds, sep = Path(config["data_path"]), config["dataset"], config["field_separator"]
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    bench = config["benchmark_filename"]
    inter_files = [root / f"{ds}.{b}.inter" for b in bench] if bench else [root / f"{ds}.inter"]
    out = {"user": set(), "item": set()}
    for path in inter_files:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, usecols=lambda c: c.split(":")[0]
                         in (uid, iid))
        df.columns = [c.split(":")[0] for c in df.columns]
        out["user"].update(df[uid])
        out["item"].update(df[iid])
    for side, field in (("user", uid), ("item", iid)):
        path = root / f"{ds}.{side}"
        if path.is_file():
            df, _ = read_atomic(path, sep=sep)
            out[side].update(df[field])
    return out
