"""Convert an RLMRec data folder into RecBole benchmark atomic files.

Usage::

    python -m recbole_darec.data.convert_rlmrec SRC_DIR DATASET_NAME [--out-dir DIR] [--force]

``SRC_DIR`` holds RLMRec's ``trn_mat.pkl``, ``val_mat.pkl``, ``tst_mat.pkl`` (user x item scipy.sparse matrices)
and optionally ``usr_emb_np.pkl`` / ``itm_emb_np.pkl`` (N x d LLM embeddings) and ``usr_prf.pkl`` /
``itm_prf.pkl`` (``{id: {'profile': str, 'reasoning': str}}``). Tokens written are RLMRec's own 0-based ids, so
rows stay traceable to RLMRec and to its ``mapper/*.json`` files. Everything is read and validated first, written
into a temporary folder inside ``out_dir`` and renamed into place last: a failure leaves nothing behind.
"""
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recbole_darec.data.atomic_output import atomic_dataset_folder, checked_target, converter_main
from recbole_darec.data.safe_pickle import safe_load_pickle

__all__ = ["convert_rlmrec", "main"]

SPLITS = (("train", "trn_mat.pkl"), ("valid", "val_mat.pkl"), ("test", "tst_mat.pkl"))
EMBEDDINGS = (("useremb", "usr_emb_np.pkl", "uid", "user_emb", 0), ("itememb", "itm_emb_np.pkl", "iid", "item_emb", 1))
PROFILES = (("userprofile", "usr_prf.pkl", 0), ("itemprofile", "itm_prf.pkl", 1))


def _load_matrix(path):
    """Load one split as a COO matrix; values must be exactly 1 (binary implicit feedback), no duplicates."""
    mat = safe_load_pickle(path)
    if not sp.issparse(mat) or mat.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D scipy.sparse user x item matrix, got {type(mat).__name__}")
    mat = sp.coo_matrix(mat)
    if mat.nnz == 0:
        raise ValueError(f"{path}: split is empty (no interactions)")
    if not np.all(mat.data == 1):
        bad = int(np.flatnonzero(mat.data != 1)[0])
        raise ValueError(f"{path}: values must all be exactly 1 (binary interactions); "
                         f"entry (user {mat.row[bad]}, item {mat.col[bad]}) is {mat.data[bad]!r}")
    # Duplicate coordinates would become repeated rows in the .inter file (and a value 2 once summed).
    if sp.csr_matrix(mat).nnz != mat.nnz:
        raise ValueError(f"{path}: contains duplicate (user, item) entries")
    return mat


def _load_embedding(path, n_rows, side):
    """Load an N x d embedding array, checking row count against the matrices and finiteness per row."""
    emb = safe_load_pickle(path)
    if not isinstance(emb, np.ndarray) or emb.ndim != 2:
        shape = getattr(emb, "shape", None)
        raise ValueError(f"{path}: expected a 2-D numpy array (N x d), got {type(emb).__name__} shape {shape}")
    if not (np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)):
        raise ValueError(f"{path}: expected a numeric array, got dtype {emb.dtype}")
    if emb.shape[0] != n_rows:
        raise ValueError(f"{path}: has {emb.shape[0]} rows but the interaction matrices have {n_rows} {side}s")
    emb = emb.astype(np.float32)  # models use float32; written with enough digits to round-trip it exactly
    bad_rows = np.flatnonzero(~np.isfinite(emb).all(axis=1))
    if bad_rows.size:
        raise ValueError(f"{path}: row {bad_rows[0]} ({side} id {bad_rows[0]}) contains NaN/Inf "
                         f"({bad_rows.size} bad rows in total)")
    return emb


def _load_profiles(path, n_rows, side):
    """Load ``{id: {'profile': str, 'reasoning': str}}`` and return ``[(id, profile, reasoning)]`` sorted by id."""
    prf = safe_load_pickle(path)
    if not isinstance(prf, dict):
        raise ValueError(f"{path}: expected a dict {{id: {{'profile': str, 'reasoning': str}}}}, "
                         f"got {type(prf).__name__}")
    rows = []
    for key, val in prf.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) or not 0 <= key < n_rows:
            raise ValueError(f"{path}: key {key!r} is not a {side} id in [0, {n_rows})")
        if not isinstance(val, dict) or not isinstance(val.get("profile"), str):
            raise ValueError(f"{path}: entry for {side} {key} must be a dict with a str 'profile'")
        reasoning = val.get("reasoning", "")
        if not isinstance(reasoning, str):
            raise ValueError(f"{path}: 'reasoning' of {side} {key} must be a str")
        rows.append((int(key), val["profile"], reasoning))
    return sorted(rows)


def _write_inter(path, mat):
    """Write one split as ``user_id:token<TAB>item_id:token`` rows sorted by user, then item."""
    order = np.lexsort((mat.col, mat.row))
    lines = [f"{u}\t{i}\n" for u, i in zip(mat.row[order].tolist(), mat.col[order].tolist())]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("user_id:token\titem_id:token\n")
        fh.writelines(lines)


def _write_embedding(path, emb, id_field, emb_field):
    """Write ``id:token<TAB>emb:float_seq``; '%.9g' round-trips every float32 exactly."""
    row_fmt = " ".join(["%.9g"] * emb.shape[1])
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{id_field}:token\t{emb_field}:float_seq\n")
        for idx, row in enumerate(emb.tolist()):
            fh.write(f"{idx}\t{row_fmt % tuple(row)}\n")


def _write_profiles(path, rows):
    """Write one JSON object per line: ``{"id": token, "text": profile, "reasoning": reasoning}``."""
    with open(path, "w", encoding="utf-8") as fh:
        for idx, text, reasoning in rows:
            fh.write(json.dumps({"id": str(idx), "text": text, "reasoning": reasoning}, ensure_ascii=False) + "\n")


def convert_rlmrec(src_dir, dataset_name, out_dir="dataset", force=False, verbose=True):
    """Convert the RLMRec folder ``src_dir`` into ``out_dir/dataset_name/`` and return that path.

    Writes ``<name>.{train,valid,test}.inter`` and, for each optional input present, ``<name>.useremb`` /
    ``<name>.itememb`` and ``<name>.userprofile.jsonl`` / ``<name>.itemprofile.jsonl``. Raises ``ValueError``
    naming the offending file for bad input, ``FileNotFoundError`` for a missing split and ``FileExistsError``
    when the target exists and ``force`` is false. Output appears atomically or not at all.
    """
    src, out_dir = Path(src_dir), Path(out_dir)
    target = checked_target(out_dir, dataset_name, force)

    # 1. Read and validate everything before writing a byte.
    mats = {}
    for split, fname in SPLITS:
        if not (src / fname).is_file():
            raise FileNotFoundError(f"{src / fname}: required RLMRec split file is missing")
        mats[split] = _load_matrix(src / fname)
    shape = mats["train"].shape
    for split, fname in SPLITS:
        if mats[split].shape != shape:
            raise ValueError(f"{src / fname}: shape {mats[split].shape} differs from trn_mat.pkl shape {shape}")
    for (a, fa), (b, fb) in ((SPLITS[0], SPLITS[1]), (SPLITS[0], SPLITS[2]), (SPLITS[1], SPLITS[2])):
        overlap = sp.csr_matrix(mats[a]).multiply(sp.csr_matrix(mats[b])).nnz
        if overlap:  # a pair in two splits would leak the answer into training or double-count it
            raise ValueError(f"{src / fa} and {src / fb}: {overlap} (user, item) pairs appear in both splits")
    sides = {"user": shape[0], "item": shape[1]}
    embs = {suffix: (_load_embedding(src / fname, shape[axis], ("user", "item")[axis]), id_f, emb_f)
            for suffix, fname, id_f, emb_f, axis in EMBEDDINGS if (src / fname).is_file()}
    if len({emb.shape[1] for emb, _, _ in embs.values()}) > 1:  # one LLM space: both sides need the same width
        (_, user_file, *_), (_, item_file, *_) = EMBEDDINGS
        raise ValueError(f"{src / user_file} has {embs['useremb'][0].shape[1]} columns but {src / item_file} has "
                         f"{embs['itememb'][0].shape[1]}: both must come from the same LLM encoder")
    profs = {suffix: _load_profiles(src / fname, shape[axis], ("user", "item")[axis])
             for suffix, fname, axis in PROFILES if (src / fname).is_file()}

    # 2. Write everything into a temporary folder that replaces the target only when complete.
    with atomic_dataset_folder(out_dir, dataset_name, force) as tmp:
        for split, mat in mats.items():
            _write_inter(tmp / f"{dataset_name}.{split}.inter", mat)
        for suffix, (emb, id_f, emb_f) in embs.items():
            _write_embedding(tmp / f"{dataset_name}.{suffix}", emb, id_f, emb_f)
        for suffix, rows in profs.items():
            _write_profiles(tmp / f"{dataset_name}.{suffix}.jsonl", rows)

    if verbose:
        counts = "/".join(str(m.nnz) for m in mats.values())
        optional = [f"{dataset_name}.{s}" for s in embs] + [f"{dataset_name}.{s}.jsonl" for s in profs]
        print(f"{dataset_name}: {sides['user']} users x {sides['item']} items; train/valid/test = {counts}")
        for suffix, rows in profs.items():
            n = sides["user" if suffix.startswith("user") else "item"]
            if len(rows) < n:
                print(f"  note: {suffix} covers {len(rows)} of {n} ids (the rest get no profile)")
        print(f"  optional files converted: {', '.join(optional) if optional else 'none'}")
        print(f"  written to {target}")
    return target


def main(argv=None):
    """Command-line entry point; returns the process exit status."""
    return converter_main(
        argv, "python -m recbole_darec.data.convert_rlmrec", "Convert an RLMRec data folder into RecBole atomic files.",
        "folder with trn_mat.pkl, val_mat.pkl, tst_mat.pkl (+ optional pickles)",
        "RecBole dataset name, e.g. yelp or amazon-book",
        lambda args: convert_rlmrec(args.src_dir, args.dataset_name, args.out_dir, force=args.force))


if __name__ == "__main__":
    raise SystemExit(main())
