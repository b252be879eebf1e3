"""Convert a dataset in the ReChorus layout (train/dev/test CSV files + optional item text) into RecBole files.

Usage::

    python -m recbole_darec.data.convert_rechorus SRC_DIR DATASET_NAME [--text FILE] [--item2index FILE]
        [--out-dir DIR] [--force]

``SRC_DIR`` holds ReChorus' ``train.csv``, ``dev.csv`` and ``test.csv``: tab-separated, a header naming at least
``user_id``, ``item_id`` and ``time`` (other columns, such as the ``neg_items`` that ReChorus samples for its own
evaluation, are ignored: this project ranks all items). Item text is optional: ``--text`` names a file of
``id<TAB>text`` rows under a header (default: the folder's only ``*.text`` file), and ``--item2index`` a file of
``key<TAB>item_id`` rows without a header that maps the text file's ids (e.g. ASINs) to item ids (default: the
folder's only ``*.item2index`` file; without one, the text file's ids are item ids).

Every user of dev/test must have training rows. A general (non-sequential) recommender needs each (user, item) pair
once, so a repeated pair is kept in one split: test wins over dev, dev over train, and within a file its last row
wins (ReChorus files are in time order). ``timestamp`` is ReChorus' ``time``.

Writes ``<name>.{train,valid,test}.inter`` and, with text, ``<name>.item`` (``text``: whitespace collapsed), for the
items of the interactions only, into a temporary folder renamed into place last: a failure leaves nothing behind.
"""
from pathlib import Path

from recbole_darec.data.atomic_output import atomic_dataset_folder, checked_target, converter_main, \
    write_split_inters

__all__ = ["convert_rechorus", "read_split", "main"]

SPLITS = (("train", "train.csv"), ("valid", "dev.csv"), ("test", "test.csv"))
COLUMNS = ("user_id", "item_id", "time")


def read_split(path):
    """``[(user, item, time)]`` of one ReChorus file, in file order (``time`` as written, checked numeric)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: required ReChorus file is missing")
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        if any(col not in header for col in COLUMNS):
            raise ValueError(f"{path}, line 1: expected a tab-separated header with user_id, item_id and time, "
                             f"got {header}")
        where = [header.index(col) for col in COLUMNS]
        rows = []
        for number, line in enumerate(fh, start=2):
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) != len(header):
                raise ValueError(f"{path}, line {number}: expected {len(header)} tab-separated fields, "
                                 f"got {len(parts)}")
            user, item, time = (parts[i].strip() for i in where)
            try:
                float(time)
            except ValueError:
                raise ValueError(f"{path}, line {number}: time {time!r} is not a number") from None
            if not user or not item:
                raise ValueError(f"{path}, line {number}: empty user_id or item_id")
            rows.append((user, item, time, number))
    if not rows:
        raise ValueError(f"{path}: no rows after the header")
    return rows


def split_pairs(src):
    """``{split: [(user, item, time)]}`` with every (user, item) pair in exactly one split (see module doc)."""
    rows = {split: read_split(Path(src) / name) for split, name in SPLITS}
    trained = {user for user, *_ in rows["train"]}
    for split, name in SPLITS[1:]:
        for user, _, _, number in rows[split]:
            if user not in trained:
                raise ValueError(f"{Path(src) / name}, line {number}: user {user!r} has no row in train.csv")
    out, taken = {}, set()
    for split in ("test", "valid", "train"):
        kept = []
        for user, item, time, _ in reversed(rows[split]):  # newest first: a pair's latest row wins
            if (user, item) not in taken:
                taken.add((user, item))
                kept.append((user, item, time))
        out[split] = kept[::-1]
    return {split: out[split] for split, _ in SPLITS}


def _one_file(src, given, suffix):
    """The file a flag names (a path, or a name inside ``src``), else the folder's only ``*<suffix>`` file."""
    if given:
        path = Path(given) if Path(given).is_file() else Path(src) / given
        if not path.is_file():
            raise FileNotFoundError(f"{given}: no such file (looked in {src} too)")
        return path
    found = sorted(Path(src).glob(f"*{suffix}"))
    if len(found) > 1:
        flag = "--text" if suffix == ".text" else "--item2index"
        raise ValueError(f"{src}: several *{suffix} files ({', '.join(p.name for p in found)}); name one with {flag}")
    return found[0] if found else None


def read_item_text(text_path, index_path=None):
    """``{item_id: text}`` from an ``id<TAB>text`` file (header skipped), ids mapped through ``index_path``."""
    index = None
    if index_path is not None:
        index = {}
        with open(index_path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) != 2 or not parts[0] or not parts[1]:
                    raise ValueError(f"{index_path}, line {number}: expected key<TAB>item_id")
                index[parts[0]] = parts[1]
    texts = {}
    with open(text_path, encoding="utf-8") as fh:
        if "\t" not in fh.readline():
            raise ValueError(f"{text_path}, line 1: expected a header of two tab-separated columns (id, text)")
        for number, line in enumerate(fh, start=2):
            key, tab, text = line.rstrip("\r\n").partition("\t")
            if not tab or not key:
                raise ValueError(f"{text_path}, line {number}: expected id<TAB>text")
            if index is not None and key not in index:
                raise ValueError(f"{text_path}, line {number}: id {key!r} is not in {Path(index_path).name}")
            texts[index[key] if index is not None else key] = " ".join(text.split())
    return texts


def _id_order(token):
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def convert_rechorus(src_dir, dataset_name, out_dir="dataset", text=None, item2index=None, force=False,
                     verbose=True):
    """Convert ``src_dir`` into ``out_dir/dataset_name/`` and return that path (see the module docstring)."""
    src = Path(src_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder")
    target = checked_target(out_dir, dataset_name, force)
    pairs = split_pairs(src)
    items = sorted({item for rows in pairs.values() for _, item, _ in rows}, key=_id_order)
    text_path = _one_file(src, text, ".text")
    index_path = _one_file(src, item2index, ".item2index")
    if index_path is not None and text_path is None:
        raise ValueError(f"{index_path}: an item2index file without a text file (pass --text)")
    texts = read_item_text(text_path, index_path) if text_path is not None else None
    if texts is not None:
        missing = [item for item in items if item not in texts]
        if missing:
            raise ValueError(f"{text_path}: no text for item_id {missing[0]} ({len(missing)} items missing)")

    with atomic_dataset_folder(out_dir, dataset_name, force) as tmp:
        write_split_inters(tmp, dataset_name, pairs)
        if texts is not None:
            with open(tmp / f"{dataset_name}.item", "w", encoding="utf-8") as fh:
                fh.write("item_id:token\ttext:token\n")
                fh.writelines(f"{item}\t{texts[item]}\n" for item in items)
    if verbose:
        users = len({user for rows in pairs.values() for user, _, _ in rows})
        counts = "/".join(str(len(rows)) for rows in pairs.values())
        print(f"{dataset_name}: {users} users x {len(items)} items; train/valid/test = {counts}; "
              f"{'item text' if texts is not None else 'no item text'}; written to {target}")
    return target


def main(argv=None):
    """Command-line entry point; returns the process exit status."""
    return converter_main(
        argv, "python -m recbole_darec.data.convert_rechorus",
        "Convert a ReChorus dataset folder (train/dev/test.csv, optional item text) into RecBole files.",
        "folder with train.csv, dev.csv, test.csv (and optionally <X>.text, <X>.item2index)",
        "RecBole dataset name, e.g. amazon-office",
        lambda args: convert_rechorus(args.src_dir, args.dataset_name, args.out_dir, args.text, args.item2index,
                                      force=args.force),
        extra_args=[("--text", {"default": None, "help": "item text file, id<TAB>text with a header "
                                                         "(default: the folder's only *.text)"}),
                    ("--item2index", {"default": None, "help": "file mapping the text ids to item ids, "
                                                               "key<TAB>item_id (default: the folder's only "
                                                               "*.item2index)"})])


if __name__ == "__main__":
    raise SystemExit(main())
