"""Text controls: the same dataset with item text that carries less or no signal, for no-harm checks.

An aligned model should do no harm when its text says nothing; these controls build that text from any dataset
whose profiles are generated from its ``.item`` fields, so the check needs no hand-made folder and no test data.
``semantic_text_control`` (default ``none``: profiles exactly as without this module):

* ``permuted``: every item with text takes the text fields of another item: items are put in a random order and
  each takes the fields of the next one (one cycle, so no item keeps its own). Users' profiles are rebuilt from the
  permuted item fields of their **training** items, as usual; a user's own fields (ml-100k's demographics) stay.
* ``half``: the same within a random half of the items (``n // 2``); the other half keep their text.
* ``cut``: an item's profile is one field (``semantic_text_cut_field``, default: the ``.item`` file's first text
  field: ml-100k's title, amazon-scientific's title) cut to its first ``semantic_text_cut_words`` words (default:
  all; amazon-office, whose only field runs title, category and brand together, sets 3). The other item fields are
  emptied, so users' profiles list the cut field of their training items where their template names it.

The random order comes from ``numpy.random.default_rng(semantic_text_control_seed)`` over the item ids in sorted
order (default seed 0, fixed rather than the run's seed: every seed of a comparison trains on the same text
condition, as with the real text, and the tables are encoded once). The control and its settings are part of the
key of the encoded tables (manifest and ``<ds>.semantic-cache/``), so no condition reuses another's tables; a row
is reused only for the identical text (its encoding is the same bits in any batch).
"""
import hashlib
import json

import numpy as np

CONTROLS = ("none", "permuted", "half", "cut")
KEYS = ("semantic_text_control", "semantic_text_control_seed", "semantic_text_cut_field", "semantic_text_cut_words")


def _int_or_none(key, value, least):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{key}={value!r}: must be a whole number >= {least}")
    return value


def text_control(opts):
    """The control a config asks for, as a dict for cache keys and manifests, or ``None`` for ``none``.

    ``opts``: a mapping with the ``KEYS`` (:meth:`recbole_darec.semantic.settings.SemanticSettings.control`, the
    config checks).
    Raises ``ValueError`` naming the key for a value outside its range.
    """
    name = opts.get("semantic_text_control") or "none"
    if name not in CONTROLS:
        raise ValueError(f"semantic_text_control={name!r}: must be one of {', '.join(CONTROLS)}")
    seed = _int_or_none("semantic_text_control_seed", opts.get("semantic_text_control_seed"), 0)
    words = _int_or_none("semantic_text_cut_words", opts.get("semantic_text_cut_words"), 1)
    field = opts.get("semantic_text_cut_field")
    if field is not None and (not isinstance(field, str) or not field):
        raise ValueError(f"semantic_text_cut_field={field!r}: must be the name of a text field of the .item file")
    if name == "none":
        return None
    if name == "cut":
        return {"control": name, "field": field, "words": words}
    return {"control": name, "seed": 0 if seed is None else seed}


def keyed_digest(digest, control):
    """The text digest the tables are stored under: unchanged without a control, else bound to it."""
    if control is None:
        return digest
    payload = json.dumps({"text_hash": digest, "text_control": control}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _cut(value, ftype, words, seq_sep):
    if words is None or ftype == "float":
        return value
    sep = seq_sep if ftype == "token_seq" else None
    return (seq_sep if sep else " ").join([w for w in value.split(sep) if w][:words])


def apply_text_control(control, item_df, text_fields, item_types, iid_field, seq_sep=" "):
    """``(item DataFrame with the control applied, item template override or None)``; ``item_df`` is unchanged.

    ``text_fields``: the item fields profiles are built from, in file order.
    """
    if control is None or item_df is None or not text_fields:
        return item_df, None
    df = item_df.copy()
    if control["control"] == "cut":
        field = control["field"] or text_fields[0]
        if field not in text_fields:
            raise ValueError(f"semantic_text_cut_field={field!r}: not a text field of the .item file "
                             f"(text fields: {', '.join(text_fields)})")
        df[field] = [_cut(v, item_types[field], control["words"], seq_sep) for v in df[field]]
        for other in text_fields:
            if other != field:
                df[other] = ""
        return df, "{" + field + "}"
    has_text = (df[text_fields] != "").any(axis=1).to_numpy() & ~df[iid_field].duplicated().to_numpy()
    rows = sorted(np.flatnonzero(has_text), key=lambda i: df[iid_field].iat[i])  # by id: file order does not matter
    order = np.asarray(rows, dtype=np.int64)[np.random.default_rng(control["seed"]).permutation(len(rows))]
    chosen = order[:len(order) // 2] if control["control"] == "half" else order
    if len(chosen) > 1:  # chosen[k] takes the fields of chosen[k + 1]: one cycle, nobody keeps their own
        columns = [df.columns.get_loc(f) for f in text_fields]
        df.iloc[chosen, columns] = item_df.iloc[np.roll(chosen, -1), columns].to_numpy()
    return df, None
