"""Give a model its frozen LLM-side tables through RecBole's own feature-loading mechanism.

:func:`apply_semantic_config` sets, on a Config, before RecBole builds the dataset::

    additional_feat_suffix: [useremb, itememb]        # load <ds>.useremb / <ds>.itememb
    load_col: {..., useremb: [uid, user_emb], itememb: [iid, item_emb]}   # else RecBole skips the files
    alias_of_user_id: [uid]    alias_of_item_id: [iid]  # remap the file ids with user_id / item_id
    preload_weight: {uid: user_emb, iid: item_emb}      # dense (num ids, d) matrices, row 0 = [PAD]

The aliases share user_id's token table; since every embedding id is validated to be a dataset id beforehand,
internal ids (and so the split) are exactly those of a run without embeddings. RecBole's ml-100k defaults set
``normalize_all: True``, which would min-max rescale the embeddings too; it is replaced by the equivalent explicit
``normalize_field`` list of the other float fields. :func:`register_semantic_buffers` then turns the preloaded
matrices into non-persistent buffers (they are rebuilt from the files, never saved in checkpoints).
"""
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from recbole_darec.semantic.files import EMB_FIELDS
from recbole_darec.semantic.split import pairs_from_dataset, train_fingerprint

BUFFERS = {"user": ("user_semantic", "user_semantic_mask"), "item": ("item_semantic", "item_semantic_mask")}


def _float_fields_of_other_files(config):
    """Float-like fields RecBole will load from the dataset's own atomic files (for the normalize_all rewrite)."""
    root, ds, sep = Path(config["data_path"]), config["dataset"], config["field_separator"]
    bench = config["benchmark_filename"]
    files = {"inter": [root / f"{ds}.{b}.inter" for b in bench] if bench else [root / f"{ds}.inter"],
             "user": [root / f"{ds}.user"], "item": [root / f"{ds}.item"]}
    load_col, unload_col = config["load_col"], config["unload_col"] or {}
    fields = []
    for source, paths in files.items():
        if isinstance(load_col, dict) and source not in load_col:
            continue
        wanted = load_col.get(source) if isinstance(load_col, dict) else "*"
        for path in (p for p in paths[:1] if p.is_file()):
            with open(path, encoding="utf-8") as fh:
                header = fh.readline().rstrip("\r\n").split(sep)
            for col in header:
                name, _, ftype = col.partition(":")
                if ftype in ("float", "float_seq") and (wanted == "*" or name in wanted) \
                        and name not in unload_col.get(source, []) and name not in fields:
                    fields.append(name)
    return fields


def semantic_config_updates(config):
    """The Config keys (and values) that make RecBole load the semantic files; idempotent."""
    suffixes = [s for s in (config["additional_feat_suffix"] or []) if s not in ("useremb", "itememb")]
    updates = {"additional_feat_suffix": suffixes + ["useremb", "itememb"]}
    if isinstance(config["load_col"], dict):  # load_col None means "everything" and needs no entry
        updates["load_col"] = {**config["load_col"], "useremb": ["uid", "user_emb"], "itememb": ["iid", "item_emb"]}
    for key, field in (("alias_of_user_id", "uid"), ("alias_of_item_id", "iid")):
        updates[key] = [f for f in (config[key] or []) if f != field] + [field]
    updates["preload_weight"] = {**(config["preload_weight"] or {}), "uid": "user_emb", "iid": "item_emb"}
    norm_fields = config["normalize_field"] or []
    if {"user_emb", "item_emb"} & set(norm_fields):
        raise ValueError("normalize_field must not contain user_emb / item_emb: min-max scaling would distort "
                         "the semantic embeddings")
    if config["normalize_all"]:
        updates["normalize_all"] = False
        updates["normalize_field"] = _float_fields_of_other_files(config) or None
    return updates


def apply_semantic_config(config):
    """Set :func:`semantic_config_updates` on ``config`` in place (call before ``create_dataset``)."""
    for key, value in semantic_config_updates(config).items():
        config[key] = value
    return config


def _check_split(dataset, manifest_path):
    """Refuse user profiles that were built from a different training split than this dataset's."""
    try:
        entry = json.loads(Path(manifest_path).read_text()).get("user", {})
    except (OSError, ValueError):
        return
    expected = entry.get("train_fingerprint")
    if not expected:
        return  # profiles from a file or provided embeddings: no history used
    pairs = pairs_from_dataset(dataset)
    if len(pairs) != entry.get("train_count"):
        logging.getLogger().warning(
            "semantic: model built on a dataset with %d interactions, user profiles used %d training ones; "
            "pass the training dataset to check the profiles for leakage", len(pairs), entry.get("train_count"))
        return
    if train_fingerprint(pairs) != expected:
        raise ValueError(f"{manifest_path}: the user profiles were built from a different training split than "
                         "this run's (seed/split settings changed, or RNG drift): rebuild them with "
                         "ensure_semantic_embeddings(config) or `python -m recbole_darec.semantic`")


def register_semantic_buffers(model, dataset, fp16=False, check_split=True):
    """Register frozen LLM-side tables on ``model`` as non-persistent buffers and return their width d_L.

    Registers ``user_semantic`` (n_users, d_L), ``item_semantic`` (n_items, d_L) -- float32, or float16 with
    ``fp16`` -- with rows indexed by RecBole internal ids (row 0 = [PAD], zero), and bool masks
    ``user_semantic_mask`` / ``item_semantic_mask`` (True where the file had a row; others are zero rows to be
    excluded from alignment losses), and sets ``model.llm_table_sha256`` ({side: sha256 of the table's bytes}, which
    run records carry). ``dataset`` is the one the model is built on (the training dataset);
    with ``check_split`` its interactions are compared with the split the user profiles were built from.
    """
    dims, hashes = {}, {}
    for side, n in (("user", dataset.user_num), ("item", dataset.item_num)):
        suffix, id_field, _ = EMB_FIELDS[side]
        if id_field not in getattr(dataset, "_preloaded_weight", {}):
            raise ValueError(f"dataset '{dataset.dataset_name}' has no preloaded '{id_field}' embeddings: call "
                             "recbole_darec.semantic.ensure_semantic_embeddings(config) before create_dataset "
                             "(plugin models do it in prepare_data)")
        matrix = np.asarray(dataset.get_preload_weight(id_field))
        if matrix.shape[0] != n:
            raise ValueError(f"{dataset.dataset_name}.{suffix}: {matrix.shape[0]} rows for {n} {side}s")
        mask = torch.zeros(n, dtype=torch.bool)
        ids = torch.as_tensor(np.asarray(getattr(dataset, f"{suffix}_feat")[id_field]), dtype=torch.long)
        mask[ids] = True
        mask[0] = False  # [PAD]
        table = torch.as_tensor(matrix, dtype=torch.float16 if fp16 else torch.float32)
        table[~mask] = 0
        name, mask_name = BUFFERS[side]
        # content hash of the table as registered, taken on the host (run records name the tables they trained with)
        hashes[side] = hashlib.sha256(memoryview(table.numpy()).cast("B")).hexdigest()
        device = getattr(model, "device", "cpu")
        model.register_buffer(name, table.to(device), persistent=False)
        model.register_buffer(mask_name, mask.to(device), persistent=False)
        dims[side] = matrix.shape[1]
    if dims["user"] != dims["item"]:
        raise ValueError(f"user embeddings have dimension {dims['user']}, item embeddings {dims['item']}")
    model.llm_table_sha256 = hashes
    if check_split:
        _check_split(dataset, Path(dataset.dataset_path) / f"{dataset.dataset_name}.semantic.json")
    return dims["user"]
