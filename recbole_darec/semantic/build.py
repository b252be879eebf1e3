"""``ensure_semantic_embeddings(config)``: make ``<ds>.useremb`` / ``<ds>.itememb`` exist, be valid and current.

Per side (user, item), first match wins:
1. an embedding file the manifest doesn't claim (yours, or the RLMRec converter's): validated, used as is;
2. profile texts from ``semantic_<side>_profile_file``, ``<ds>.<side>profile.jsonl`` or RLMRec's
   ``usr_prf.pkl`` / ``itm_prf.pkl`` in the dataset folder;
3. profile texts generated from the dataset's side information (:mod:`recbole_darec.semantic.profiles`);
   user profiles use training interactions only (:mod:`recbole_darec.semantic.split`); a text control
   (``semantic_text_control``, :mod:`recbole_darec.semantic.text_controls`) changes the item fields they use.
Texts are encoded only when the encoder or the texts changed (manifest ``<ds>.semantic.json``), and not even then
when the same encoder already encoded the same texts: matrices are kept in ``<ds>.semantic-cache/`` keyed by
(side, encoder identity, texts digest), at most ``cache.CACHE_KEEP`` per side, so alternating seeds (ml-100k user
profiles follow the seed's training split) re-encodes nothing; otherwise only the texts that none of those matrices
holds are encoded (a few changed or new profiles cost a few encodings). Everything is read and validated before
anything is written; each file is replaced atomically.
"""
import logging
import os
from pathlib import Path

import numpy as np

from recbole_darec.semantic import cache, files
from recbole_darec.semantic.loading import apply_semantic_config
from recbole_darec.semantic.profiles import TEXT_TYPES, item_texts, profile_settings, read_atomic, \
    text_fields, user_texts
from recbole_darec.semantic.settings import SemanticSettings
from recbole_darec.semantic.split import known_tokens, train_fingerprint, training_interactions
from recbole_darec.semantic.text_controls import apply_text_control, keyed_digest
from recbole_darec.writable import check_writable

RLMREC_PROFILES = {"user": "usr_prf.pkl", "item": "itm_prf.pkl"}
WRITE_HINT = ("{ds}'s embedding files and semantic.json are written there: make it writable, or copy the dataset "
              "to a writable folder and pass data_path")


def _split_entry(train):
    """What the manifest records of the training split user profiles were built from (the split check's key)."""
    return {"train_fingerprint": train_fingerprint(train), "train_count": len(train)}


def _has_text_fields(path, sep):
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split(sep)
    return sum(col.partition(":")[2] in TEXT_TYPES for col in header) > 1  # more than the id column


def _text_source(config, settings, side, root, ds):
    """A profile file path, ``"generated"``, or ``None`` when nothing can describe this side."""
    named = settings.profile_file(side)
    if named:
        if not Path(named).is_file():
            raise FileNotFoundError(f"semantic_{side}_profile_file: {named} does not exist")
        return Path(named)
    for name in (f"{ds}.{side}profile.jsonl", RLMREC_PROFILES[side]):
        if (root / name).is_file():
            return root / name
    sep = config["field_separator"]
    usable = [root / f"{ds}.item"] + ([root / f"{ds}.user"] if side == "user" else [])  # users: own + history
    return "generated" if any(_has_text_fields(p, sep) for p in usable) else None


def missing_message(ds, root, sides):
    """What to provide when neither embeddings, profiles nor side information exist."""
    lines = [f"dataset '{ds}' has no LLM-side representations for {' and '.join(s + 's' for s in sides)} "
             f"(looked in {root}). Provide, for each missing side, one of:"]
    for side in sides:
        suffix, id_f, emb_f = files.EMB_FIELDS[side]
        lines.append(f"  - {root / f'{ds}.{suffix}'}: header '{id_f}:token<TAB>{emb_f}:float_seq', one row per "
                     f"{side} id, values separated by spaces; or {root / f'{ds}.{side}profile.jsonl'}: one "
                     f'{{"id": <{side} id>, "text": "..."}} per line, or RLMRec\'s {RLMREC_PROFILES[side]} copied there '
                     f'(texts are encoded with semantic_encoder)')
    lines.append(f"  - or convert an RLMRec folder with usr_emb_np.pkl/itm_emb_np.pkl (or usr_prf.pkl/itm_prf.pkl): "
                 f"python -m recbole_darec.data.convert_rlmrec SRC {ds} --out-dir {root.parent} --force")
    return "\n".join(lines)


def generate_profile_texts(config, sides=("user", "item"), known=None, semantic=None):
    """Profile texts built from side information: ``({side: {token: text}}, training pairs or None)``.

    User texts use the training interactions only (:func:`recbole_darec.semantic.split.training_interactions`);
    users/items whose text comes out empty are left out (they get no embedding row, mask False). The config's
    text control (:mod:`recbole_darec.semantic.text_controls`) is applied to the item fields both sides use.
    ``semantic``: the run's :class:`SemanticSettings` when the caller has them (else read from ``config``).
    """
    if not sides:
        return {}, None
    root, ds = Path(config["data_path"]), config["dataset"]
    known = known if known is not None else known_tokens(config)
    settings, sep, seq_sep = profile_settings(config), config["field_separator"], config["seq_separator"]
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    item_df, item_types = read_atomic(root / f"{ds}.item", sep) if (root / f"{ds}.item").is_file() else (None, None)
    control = (semantic or SemanticSettings.from_config(config)).control()
    item_df, item_template = apply_text_control(control, item_df,
                                                text_fields(item_types, iid) if item_df is not None else [],
                                                item_types, iid, seq_sep)
    out, train = {}, None
    if "item" in sides and item_df is not None:
        item_settings = {**settings, "profile_item_template": item_template} if item_template else settings
        texts = item_texts(item_df, item_types, iid, item_settings, seq_sep)
        out["item"] = {t: s for t, s in texts.items() if t in known["item"] and s}
    if "user" in sides:
        user_df, user_types = read_atomic(root / f"{ds}.user", sep) if (root / f"{ds}.user").is_file() else (None, None)
        train = training_interactions(config)
        texts = user_texts(sorted(known["user"]), train, settings, user_df, user_types, uid, item_df, item_types,
                           iid, seq_sep)
        out["user"] = {t: s for t, s in texts.items() if s}
    return out, train


def ensure_semantic_embeddings(config, encoder=None, force=False):
    """Build or check ``<ds>.useremb`` / ``<ds>.itememb`` and set the Config keys that make RecBole load them.

    The caller holds the dataset folder's lock (:func:`recbole_darec.single_run.dataset_build_lock`), as a run's
    data preparation and the semantic CLI do.

    Args:
        config (recbole.config.Config): the run's config (``data_path``, ``dataset``, ``semantic_*`` keys).
        encoder (TextEncoder | None): an already-built encoder (anything with ``identity``, ``dim`` and
            ``encode(texts, show_progress, desc)``); default: built from ``semantic_*`` keys when needed.
        force (bool): re-encode generated/profile-file sides even when current (provided files are never touched).

    Returns:
        dict: per side ``{"path", "source", "rebuilt", "count", "dim"}``, plus ``"cached": True`` on a rebuilt
        side whose matrix came from ``<ds>.semantic-cache/`` instead of the encoder, or ``"reused": n`` when n of
        its rows were taken from cached matrices of the same encoder (same text) and only the rest encoded.

    Raises:
        FileNotFoundError: a side has no embeddings, no profiles and no side information (message says what to
            provide). ValueError: invalid files (naming file and line) or dimensions that differ across files.
    """
    root = Path(config["data_path"])
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    result = _ensure(config, root, encoder, force)
    apply_semantic_config(config)
    return result


def _cache_outgoing(root, ds, side, entry, path, new_key):
    """Before our file is replaced, make sure the matrix it holds is in the cache (files built before the cache
    existed, or whose entry was pruned): switching back to those texts then costs a file read, not an encoding."""
    if not (entry and entry.get("encoder") and entry.get("text_hash") and cache.is_ours(entry, path)):
        return
    if (entry["encoder"], entry["text_hash"]) == new_key:  # forced rebuild: the new matrix is stored instead
        return
    if cache.cache_entry_path(root, ds, side, entry["encoder"], entry["text_hash"]).is_file():
        return
    try:
        tokens, matrix = files.read_embedding_file(path, side)
    except (OSError, ValueError) as exc:  # only an optimisation: never block the rebuild
        logging.getLogger().debug(f"semantic: not caching the previous {path}: {exc}")
        return
    if len(tokens) == entry.get("count") and matrix.shape[1] == entry.get("dim"):
        cache.store_cached(root, ds, side, entry["encoder"], entry["text_hash"], tokens, matrix)


def _ensure(config, root, encoder, force):
    ds, settings, sep = config["dataset"], SemanticSettings.from_config(config), config["field_separator"]
    if encoder is None:
        settings.check_dtype()  # refused before any work, whether or not encoding is due
    mpath = cache.manifest_path(root, ds)
    manifest, known = cache.read_manifest(mpath), known_tokens(config)
    control = settings.control()  # checked before any work
    sources, result, missing, validated = {}, {}, [], False
    for side in ("user", "item"):  # 1. decide and validate, write nothing
        path = root / f"{ds}.{files.EMB_FIELDS[side][0]}"
        entry = manifest.get(side)
        if path.is_file() and not cache.is_ours(entry, path):
            if not (entry and entry.get("source") == "provided" and cache.same_file(entry, path)):
                tokens, matrix = files.read_embedding_file(path, side, known[side], sep, config["seq_separator"])
                manifest[side] = {"source": "provided", "dim": matrix.shape[1], "count": len(tokens),
                                  **cache.file_stamp(path)}
                validated = True
            result[side] = {"path": path, "source": "provided", "rebuilt": False,
                            "count": manifest[side]["count"], "dim": manifest[side]["dim"]}
            continue
        sources[side] = _text_source(config, settings, side, root, ds)
        if sources[side] is None and path.is_file():  # ours, but its source is gone: keep using it
            del sources[side]
            result[side] = {"path": path, "source": entry["source"], "rebuilt": False, "count": entry["count"],
                            "dim": entry["dim"]}
        elif sources[side] is None:
            missing.append(side)
    if missing:
        raise FileNotFoundError(missing_message(ds, root, missing))
    for side in ("user", "item") if control is not None else ():
        if sources.get(side) != "generated":  # a file's texts (or vectors) can't be rebuilt from controlled fields
            given = sources.get(side) or result[side]["path"]
            raise ValueError(f"semantic_text_control={control['control']} needs {side} profiles generated from the "
                             f"dataset's item text, but they come from {given}")
    texts = {s: files.read_profile_file(src, s, known[s]) for s, src in sources.items() if src != "generated"}
    generated, train = generate_profile_texts(config, [s for s, src in sources.items() if src == "generated"], known,
                                              settings)
    texts.update(generated)
    identity = encoder.identity if encoder is not None else settings.encoder_identity()
    todo, split_moved = {}, False
    for side, side_texts in texts.items():  # 2. encode what changed (still nothing written)
        path = root / f"{ds}.{files.EMB_FIELDS[side][0]}"
        digest = keyed_digest(cache.text_hash(side_texts), control)  # a control's tables never pass for others'
        if not force and cache.is_current(manifest.get(side), path, identity, digest):
            result[side] = {"path": path, "source": manifest[side]["source"], "rebuilt": False,
                            "count": manifest[side]["count"], "dim": manifest[side]["dim"]}
            if side == "user" and sources[side] == "generated":
                # Today's split gives the very texts on file (profiles without history, or an unchanged one): they
                # are this split's profiles, and the manifest says so (the model's split check compares with it).
                split = _split_entry(train)
                split_moved = any(manifest[side].get(k) != v for k, v in split.items())
                manifest[side].update(split)
            continue
        check_writable(root, "dataset folder", WRITE_HINT.format(ds=ds))  # before minutes of encoding
        if not side_texts:
            raise ValueError(f"no {side} profile could be built for dataset '{ds}' (all texts empty)")
        tokens = sorted(side_texts)
        dim = getattr(encoder, "dim", None)
        matrix = None if force else cache.load_cached(root, ds, side, identity, digest, tokens, dim)
        cached, reused, keys = matrix is not None, 0, None  # keys: only a matrix that is stored needs them
        if cached:
            logging.getLogger().info(f"semantic: reusing cached {side} embeddings of {ds} ({len(tokens)} profiles, "
                                     f"{identity['encoder']})")
        else:
            keys = cache.text_keys(side_texts[t] for t in tokens)
            rows = {} if force else cache.reusable_rows(root, ds, side, identity, dim)
            reused = sum(key in rows for key in keys)
            new = {key: side_texts[t] for t, key in zip(tokens, keys) if key not in rows}  # one per distinct text
            logging.getLogger().info(f"semantic: encoding {len(new)} of {len(tokens)} {side} profiles of {ds} with "
                                     f"{identity['encoder']} ({reused} reused from earlier encodings)")
            if new:
                if encoder is None:
                    encoder = settings.text_encoder()
                rows.update(zip(new, encoder.encode(list(new.values()), settings.show_progress,
                                                    f"{ds} {side}s")))
            matrix = np.stack([rows[key] for key in keys]).astype(np.float32, copy=False)
        todo[side] = (path, tokens, matrix, digest, cached, keys)
        result[side] = {"path": path, "source": str(sources[side]), "rebuilt": True, "count": len(tokens),
                        "dim": matrix.shape[1], **({"cached": True} if cached else {}),
                        **({"reused": reused} if reused else {})}
    if result["user"]["dim"] != result["item"]["dim"]:
        raise ValueError(f"{result['user']['path']} has dimension {result['user']['dim']} but "
                         f"{result['item']['path']} has {result['item']['dim']}: both sides need the same encoder")
    for side, (path, tokens, matrix, digest, cached, keys) in todo.items():  # 3. file, then its manifest entry
        _cache_outgoing(root, ds, side, manifest.get(side), path, (identity, digest))
        files.write_embedding_file(path, side, tokens, matrix)
        if not cached:
            cache.store_cached(root, ds, side, identity, digest, tokens, matrix, keys=keys)
        manifest[side] = {"source": str(sources[side]), "encoder": identity, "text_hash": digest,
                          "dim": int(matrix.shape[1]), "count": len(tokens), **cache.file_stamp(path),
                          **({"text_control": control} if control is not None else {})}
        if sources[side] == "generated":
            files.write_profile_file(root / f"{ds}.generated.{side}profile.jsonl", texts[side])
            if side == "user":
                manifest[side].update(_split_entry(train))
        cache.write_manifest(mpath, manifest)
    if split_moved and not todo:
        check_writable(root, "dataset folder", WRITE_HINT.format(ds=ds))
        cache.write_manifest(mpath, manifest)
    elif validated and not todo and os.access(root, os.W_OK):
        cache.write_manifest(mpath, manifest)  # remember validated provided files (a read-only folder: next time)
    return result
