"""Convert a UniSRec-preprocessed Amazon dataset (sequence files + item text) into RecBole atomic files.

Usage::

    python -m recbole_darec.data.convert_unisrec SRC_DIR DATASET_NAME [--prefix Scientific] [--out-dir DIR] [--force]

``SRC_DIR`` holds UniSRec's ``<P>.train.inter`` / ``<P>.valid.inter`` / ``<P>.test.inter`` (rows: user, the user's
previous items (last 50 at most), next item), ``<P>.text`` (``ASIN<TAB>"title. category path. brand. "``) and
``<P>.item2index`` (``ASIN<TAB>item index``). Each user's full sequence is rebuilt from the prefix-augmented train
rows (the shortest history holds the first item, every row's target follows in order), then the published
leave-one-out targets are kept: the last item is the test item, the second-to-last the validation item.

A general (non-sequential) recommender needs each (user, item) pair once, so repeated pairs are removed: the test
pair wins, a validation item equal to the test item is dropped (that user has no validation target), and training
keeps the most recent occurrence of every other item. ``timestamp`` is the item's position in the user's sequence
(order only: the source has no times), so "most recent first" user profiles follow the real order.

Writes ``<name>.{train,valid,test}.inter`` and ``<name>.item`` (``title``, ``text``), into a temporary folder
renamed into place last: a failure leaves nothing behind.
"""
from pathlib import Path

from recbole_darec.data.atomic_output import atomic_dataset_folder, checked_target, converter_main, \
    write_split_inters

__all__ = ["convert_unisrec", "read_sequences", "main"]

SPLIT_FILES = ("train", "valid", "test")


def _read_rows(path):
    """``[(user, [history items], target)]`` of one UniSRec split file, in file order."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        if [col.split(":")[0] for col in header] != ["user_id", "item_id_list", "item_id"]:
            raise ValueError(f"{path}, line 1: expected the header user_id:token, item_id_list:token_seq, "
                             f"item_id:token, got {header}")
        rows = []
        for number, line in enumerate(fh, start=2):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) != 3 or not parts[0] or not parts[2]:
                raise ValueError(f"{path}, line {number}: expected 3 tab-separated fields, got {line.strip()!r}")
            rows.append((parts[0], parts[1].split(), parts[2]))
    return rows


def read_sequences(src, prefix):
    """``{user: full item sequence}`` rebuilt from the three split files (checked against the test histories)."""
    split_rows = {}
    for split in SPLIT_FILES:
        path = Path(src) / f"{prefix}.{split}.inter"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: required UniSRec split file is missing")
        split_rows[split] = _read_rows(path)
    valid = {user: (history, target) for user, history, target in split_rows["valid"]}
    test = {user: (history, target) for user, history, target in split_rows["test"]}
    train_targets, first_item = {}, {}
    # Rows of one user come newest first; walk them oldest first.
    for user, history, target in reversed(split_rows["train"]):
        if user not in first_item:
            first_item[user] = history[0]
        train_targets.setdefault(user, []).append(target)
    sequences = {}
    for user, (test_history, test_item) in test.items():
        if user not in valid:
            raise ValueError(f"{Path(src) / f'{prefix}.valid.inter'}: user {user} has a test row but no valid row")
        valid_history, valid_item = valid[user]
        start = [first_item[user]] + train_targets[user] if user in first_item else list(valid_history)
        sequence = start + [valid_item, test_item]
        if sequence[-1 - len(test_history):-1] != test_history:
            raise ValueError(f"{Path(src) / f'{prefix}.test.inter'}: user {user}'s test history does not continue "
                             "the train/valid rows")
        sequences[user] = sequence
    return sequences


def split_pairs(sequences):
    """``{split: [(user, item, position)]}`` with every (user, item) pair in exactly one split (see module doc)."""
    out = {split: [] for split in SPLIT_FILES}
    for user, sequence in sequences.items():
        test_item, valid_item = sequence[-1], sequence[-2]
        out["test"].append((user, test_item, len(sequence) - 1))
        if valid_item != test_item:
            out["valid"].append((user, valid_item, len(sequence) - 2))
        latest = {}
        for position, item in enumerate(sequence[:-2]):
            if item not in (test_item, valid_item):
                latest[item] = position
        out["train"] += [(user, item, position) for item, position in sorted(latest.items(), key=lambda kv: kv[1])]
    return out


def read_item_text(src, prefix):
    """``{item index: (title, text)}``; the title is the text before its category path (or an empty one)."""
    index = {}
    with open(Path(src) / f"{prefix}.item2index", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) != 2:
                raise ValueError(f"{Path(src) / f'{prefix}.item2index'}, line {number}: expected ASIN<TAB>index")
            index[parts[0]] = parts[1]
    texts = {}
    path = Path(src) / f"{prefix}.text"
    with open(path, encoding="utf-8") as fh:
        fh.readline()
        for number, line in enumerate(fh, start=2):
            asin, _, text = line.rstrip("\r\n").partition("\t")
            if asin not in index:
                raise ValueError(f"{path}, line {number}: item {asin!r} is not in {prefix}.item2index")
            text = " ".join(text.strip().strip('"').split())
            # "title. Industrial & Scientific <path>. brand." -- or "title. . brand." without a path
            cuts = [i for i in (text.find(". . "), text.find(". Industrial & Scientific")) if i >= 0]
            cut = min(cuts) if cuts else -1
            title = (text[:cut] if cut >= 0 else text).strip()
            texts[index[asin]] = (title, text)
    return texts


def _clean(value):
    return value.replace("\t", " ")


def convert_unisrec(src_dir, dataset_name, prefix="Scientific", out_dir="dataset", force=False, verbose=True):
    """Convert ``src_dir`` into ``out_dir/dataset_name/`` and return that path (see the module docstring)."""
    src = Path(src_dir)
    target = checked_target(out_dir, dataset_name, force)
    pairs = split_pairs(read_sequences(src, prefix))
    texts = read_item_text(src, prefix)
    missing = sorted({item for rows in pairs.values() for _, item, _ in rows} - set(texts))
    if missing:
        raise ValueError(f"{src / f'{prefix}.text'}: no text for item index {missing[0]} ({len(missing)} missing)")

    with atomic_dataset_folder(out_dir, dataset_name, force) as tmp:
        write_split_inters(tmp, dataset_name, pairs)
        with open(tmp / f"{dataset_name}.item", "w", encoding="utf-8") as fh:
            fh.write("item_id:token\ttitle:token\ttext:token\n")
            fh.writelines(f"{item}\t{_clean(title)}\t{_clean(text)}\n"
                          for item, (title, text) in sorted(texts.items(), key=lambda kv: int(kv[0])))
    if verbose:
        counts = "/".join(str(len(rows)) for rows in pairs.values())
        print(f"{dataset_name}: {len(pairs['test'])} users x {len(texts)} items; train/valid/test = {counts}; "
              f"written to {target}")
    return target


def main(argv=None):
    """Command-line entry point; returns the process exit status."""
    return converter_main(
        argv, "python -m recbole_darec.data.convert_unisrec",
        "Convert UniSRec sequence files + item text into RecBole files.",
        "folder with <P>.train/valid/test.inter, <P>.text, <P>.item2index",
        "RecBole dataset name, e.g. amazon-scientific",
        lambda args: convert_unisrec(args.src_dir, args.dataset_name, args.prefix, args.out_dir, force=args.force),
        extra_args=[("--prefix", {"default": "Scientific", "help": "file name prefix <P> (default: Scientific)"})])


if __name__ == "__main__":
    raise SystemExit(main())
