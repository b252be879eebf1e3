"""Items a model has never seen, read from a RecBole ``.item`` file: their profile texts, built exactly as the
dataset's own item profiles are (same template, value maps and joiners: :func:`profiles.item_texts`), so that
:meth:`SemanticMixin.cold_item_embeddings` can place them among the items the model knows."""
from collections import Counter, namedtuple
from pathlib import Path

from recbole_darec.cli_errors import UserError, listing, one_line
from recbole_darec.semantic.profiles import item_texts, profile_settings, read_atomic, template_fields, text_fields
from recbole_darec.semantic.split import known_tokens

# tokens: the new ids in file order; texts: their profile texts (same order); frame: the file as read (strings)
NewItems = namedtuple("NewItems", "tokens texts frame")


def dataset_item_file(config):
    """``(DataFrame, {field: type})`` of the dataset's ``.item`` file, or ``(None, None)`` when it has none."""
    path = Path(config["data_path"]) / f"{config['dataset']}.item"
    return read_atomic(path, config["field_separator"]) if path.is_file() else (None, None)


def read_new_items(path, config):
    """The items of ``path`` (a ``.item`` file with the dataset's header format) and their profile texts.

    Raises:
        UserError (one line naming the file): a missing or unreadable file, no item id column, no rows, repeated
        ids, ids the dataset already has, a field the dataset's item template needs that the file lacks (or has
        with another type than the dataset's ``.item``), an item whose text comes out empty.
    """
    path = Path(path)
    ds, iid = config["dataset"], config["ITEM_ID_FIELD"]
    if not path.is_file():
        raise UserError(f"--new-items: {path} does not exist")
    try:
        frame, types = read_atomic(path, config["field_separator"])
    except (ValueError, UnicodeDecodeError) as err:  # pandas' ParserError is a ValueError
        raise UserError(f"--new-items: {path} is not a readable .item file ({one_line(err)})") from None
    if types.get(iid) != "token":
        raise UserError(f"--new-items: {path} has no {iid}:token column (its header must name {ds}'s item id "
                        f"field, e.g. {iid}:token)")
    tokens = list(frame[iid])
    if not tokens:
        raise UserError(f"--new-items: {path} has no items")
    repeated = sorted(t for t, n in Counter(tokens).items() if n > 1)
    if repeated:
        raise UserError(f"--new-items: {path} lists item id(s) {listing(repeated)} more than once")
    known = known_tokens(config)["item"]
    taken = [t for t in tokens if t in known]
    if taken:
        raise UserError(f"--new-items: {path}: item id(s) {listing(taken)} already exist in dataset {ds} "
                        f"({len(taken)} of {len(tokens)}); give new items ids the dataset does not have")
    _, dataset_types = dataset_item_file(config)
    if dataset_types is None:
        raise UserError(f"--new-items: dataset {ds} has no .item file, so there is no item text to build new items' "
                        "text like")
    fields = text_fields(dataset_types, iid)
    settings = profile_settings(config)
    template = settings["profile_item_template"]
    needed = [f for f in template_fields(template) if f in dataset_types] if template else fields
    what = f"{ds}'s profile_item_template" if template else f"{ds}'s item profiles (every text field of {ds}.item)"
    missing = [f for f in needed if f not in types]
    if missing:
        raise UserError(f"--new-items: {path} lacks the field(s) {', '.join(missing)} that {what} needs; "
                        f"use {ds}.item's header ({', '.join(f'{f}:{t}' for f, t in dataset_types.items())})")
    wrong = [f"{f} is {types[f]}, {ds}.item has {dataset_types[f]}" for f in needed if types[f] != dataset_types[f]]
    if wrong:
        raise UserError(f"--new-items: {path}: field type(s) differ from {ds}.item: {'; '.join(wrong)}")
    # the dataset's text fields with its types (the auto template lists them all); fields no template names may
    # be absent from the file
    columns = {f: frame[f] if types.get(f) == dataset_types[f] else "" for f in fields}
    table = frame[[iid]].assign(**columns)
    texts = item_texts(table, {iid: "token", **{f: dataset_types[f] for f in fields}}, iid, settings,
                       config["seq_separator"])
    empty = [t for t in tokens if not texts[t]]
    if empty:
        raise UserError(f"--new-items: {path}: item(s) {listing(empty)} have no text in the field(s) "
                        f"{', '.join(needed)}")
    return NewItems(tokens, [texts[t] for t in tokens], frame)
