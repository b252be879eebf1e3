"""Profile texts for users and items, built from a RecBole dataset's side information and a template.

Works for any dataset whose ``.item`` / ``.user`` files have token, token_seq or float fields. A template is a
list of segments (or one string); ``{field}`` is replaced by the field's value, and for users ``{history_<field>}``
by the item field aggregated over the user's **training** interactions (the caller passes only those, so valid and
test items can never reach a profile). A segment whose placeholders are all empty is dropped, so missing values
don't leave "Genres: ." behind. Without a configured template every text field is listed as ``field: value``.

Config keys (defaults: ``properties/model/SemanticMixin.yaml``; a dataset's templates, e.g. ml-100k's, in
``dataset_configs/<dataset>.yaml``):
    profile_item_template / profile_user_template (str | list[str]): the templates.
    profile_value_map (dict): ``{field: {raw token: replacement}}``, e.g. gender ``M`` -> ``male``.
    profile_seq_join (dict): ``{field: joiner}`` for token_seq fields (default ``" "``).
    profile_history (dict): ``{item field: "list" | "count"}``; ``list`` = values of the most recent training
        items (default), ``count`` = the most frequent tokens over all training items.
    profile_max_history (int, 20): items listed by ``list`` placeholders.
    profile_top_tokens (int, 5): tokens listed by ``count`` placeholders.
"""
import csv
import re
from collections import Counter

import pandas as pd

from recbole_darec.semantic.defaults import with_defaults

TEXT_TYPES = ("token", "token_seq", "float")
_PLACEHOLDER = re.compile(r"{([^{}]+)}")


def profile_settings(config):
    """The ``profile_*`` keys: config value (dataset YAML included), else the YAML default."""
    out = with_defaults(config, "profile_")
    for key in ("profile_max_history", "profile_top_tokens"):
        if int(out[key]) < 1:
            raise ValueError(f"{key} must be >= 1, got {out[key]!r}")
    return out


def read_atomic(path, sep="\t"):
    """Read a RecBole atomic file as strings; return ``(DataFrame with plain field names, {field: type})``."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split(sep)
    types = {}
    for col in header:
        name, _, ftype = col.partition(":")
        if not ftype:
            raise ValueError(f"{path}, line 1: column {col!r} has no ':type'")
        types[name] = ftype
    df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE,
                     encoding="utf-8")
    df.columns = list(types)
    return df, types


def _formatter(ftype, field, settings, seq_sep):
    vmap = settings["profile_value_map"].get(field, {})
    join = settings["profile_seq_join"].get(field, " ")
    if ftype == "token":
        return lambda v: str(vmap.get(v, v)).strip()
    if ftype == "token_seq":
        return lambda v: join.join(str(vmap.get(t, t)) for t in v.split(seq_sep) if t)
    return lambda v: f"{float(v):g}" if v.strip() else ""  # float: '1995.0' -> '1995'


def _render(template, values, key_name):
    segments = [template] if isinstance(template, str) else list(template)
    out = []
    for seg in segments:
        names = _PLACEHOLDER.findall(seg)
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"{key_name}: unknown placeholder(s) {missing}; available: {sorted(values)}")
        if names and not any(values[n] for n in names):
            continue  # every value of this segment is empty: drop it
        out.append(_PLACEHOLDER.sub(lambda m: values[m.group(1)], seg))
    return " ".join(" ".join(out).split())


def template_fields(template):
    """The field names a template's placeholders use, in order of first use (``[]`` for no template)."""
    segments = [template] if isinstance(template, str) else list(template or [])
    return list(dict.fromkeys(name for seg in segments for name in _PLACEHOLDER.findall(seg)))


def _auto_template(fields, prefix="", label=""):
    return [f"{label}{f}: {{{prefix}{f}}}." for f in fields]


def text_fields(types, id_field):
    return [f for f, t in types.items() if f != id_field and t in TEXT_TYPES]


def item_texts(item_df, types, id_field, settings, seq_sep=" "):
    """``{item token: text}`` for every row of the item file (as read by :func:`read_atomic`)."""
    fields = text_fields(types, id_field)
    template = settings["profile_item_template"] or _auto_template(fields)
    fmt = {f: _formatter(types[f], f, settings, seq_sep) for f in fields}
    return {row[id_field]: _render(template, {f: fmt[f](row[f]) for f in fields}, "profile_item_template")
            for row in item_df.to_dict("records")}


def _history(items, raw, formatted, item_types, field, mode, settings, seq_sep):
    """Aggregate one item field over a user's training items (most recent first)."""
    if mode == "count":  # counts the raw tokens, shows them mapped
        counts = Counter()
        for item in items:
            value = raw.get(item, {}).get(field, "")
            counts.update(t for t in (value.split(seq_sep) if item_types[field] == "token_seq" else [value]) if t)
        vmap = settings["profile_value_map"].get(field, {})
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:int(settings["profile_top_tokens"])]
        return ", ".join(str(vmap.get(t, t)) for t, _ in top)
    if mode != "list":
        raise ValueError(f"profile_history[{field!r}] must be 'list' or 'count', got {mode!r}")
    shown = [formatted[i][field] for i in items if i in formatted and formatted[i][field]]
    return "; ".join(shown[:int(settings["profile_max_history"])])


def user_texts(users, train, settings, user_df=None, user_types=None, uid_field="user_id", item_df=None,
               item_types=None, iid_field="item_id", seq_sep=" "):
    """``{user token: text}`` for ``users`` from their own fields and their **training** interactions.

    Args:
        users (Iterable[str]): user tokens that get a profile.
        train (DataFrame): training interactions only, columns ``user``, ``item`` (tokens) and optional
            ``time``; history is ordered most recent first by time when present, else by row order.
        settings (dict): :func:`profile_settings`.
        user_df, user_types: the ``.user`` file (optional) as read by :func:`read_atomic`.
        item_df, item_types: the ``.item`` file (optional) as read by :func:`read_atomic`.
    """
    ufields = text_fields(user_types or {}, uid_field) if user_df is not None else []
    ifields = text_fields(item_types or {}, iid_field) if item_df is not None else []
    template = settings["profile_user_template"] or (
        _auto_template(ufields) + _auto_template(ifields, prefix="history_", label="interacted "))
    ufmt = {f: _formatter(user_types[f], f, settings, seq_sep) for f in ufields}
    ifmt = {f: _formatter(item_types[f], f, settings, seq_sep) for f in ifields}
    raw = {r[iid_field]: r for r in item_df.to_dict("records")} if item_df is not None else {}
    formatted = {i: {f: ifmt[f](r[f]) for f in ifields} for i, r in raw.items()}
    user_rows = {r[uid_field]: r for r in user_df.to_dict("records")} if user_df is not None else {}
    if "time" in train.columns:  # stable sort keeps row order among equal times
        train = train.sort_values("time", ascending=False, kind="stable")
    history = train.groupby("user", sort=False)["item"].apply(list).to_dict()
    texts = {}
    for user in users:
        row = user_rows.get(user, {})
        values = {f: ufmt[f](row.get(f, "")) for f in ufields}
        for f in ifields:
            mode = settings["profile_history"].get(f, "list")
            values[f"history_{f}"] = _history(history.get(user, []), raw, formatted, item_types, f, mode, settings,
                                              seq_sep)
        texts[user] = _render(template, values, "profile_user_template")
    return texts
