"""Reading, validating and atomically writing the semantic files.

* embeddings: RecBole atomic files ``<ds>.useremb`` (``uid:token<TAB>user_emb:float_seq``) and ``<ds>.itememb``
  (``iid:token<TAB>item_emb:float_seq``), the same format the RLMRec converter writes;
* profiles: JSON lines ``{"id": token, "text": str}`` (extra keys such as ``reasoning`` are ignored), or RLMRec's
  ``usr_prf.pkl`` / ``itm_prf.pkl`` (``{id: {'profile': str, ...}}``) through the restricted unpickler.

Every error is a ``ValueError`` naming the file and the 1-based line (line 1 is the header of atomic files).
Writers go through ``recbole_darec.atomic`` (a temp file in the same folder, renamed over the target): a reader
sees the old file or the new one, never half of one.
"""
import json
from pathlib import Path

import numpy as np

from recbole_darec.atomic import atomic_path
from recbole_darec.data.safe_pickle import safe_load_pickle

# side -> (file suffix, id field, embedding field); the field names are what RecBole's alias/preload keys use.
EMB_FIELDS = {"user": ("useremb", "uid", "user_emb"), "item": ("itememb", "iid", "item_emb")}
SEMANTIC_MODE = 0o644  # embedding, profile and cache files are readable by all, whatever the umask


def read_embedding_file(path, side, known_tokens=None, sep="\t", seq_sep=" "):
    """Parse and validate an embedding atomic file; return ``(tokens: list[str], matrix: float32 (n, d))``.

    Args:
        path (str | Path): the ``.useremb`` / ``.itememb`` file.
        side (str): ``"user"`` or ``"item"`` (fixes the expected header).
        known_tokens (set[str] | None): ids the dataset knows; any other id is an error (RecBole would otherwise
            invent a new user/item for it).
        sep, seq_sep (str): RecBole's ``field_separator`` and ``seq_separator``.
    """
    path = Path(path)
    _, id_field, emb_field = EMB_FIELDS[side]
    expected = f"{id_field}:token{sep}{emb_field}:float_seq"
    tokens, rows, first_line, dim = [], [], {}, None
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n")
        if header != expected:
            raise ValueError(f"{path}, line 1: header must be {expected!r}, got {header!r}")
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split(sep)
            if len(parts) != 2:
                raise ValueError(f"{path}, line {lineno}: expected 2 tab-separated columns, got {len(parts)}")
            token, values = parts
            try:
                row = np.array(values.split(seq_sep) if values else [], dtype=np.float32)
            except ValueError as exc:
                raise ValueError(f"{path}, line {lineno}: {id_field} {token!r} has a non-numeric value ({exc})")
            if dim is None:
                dim, dim_line = row.size, lineno
            if row.size != dim or dim == 0:
                raise ValueError(f"{path}, line {lineno}: {id_field} {token!r} has {row.size} values, "
                                 f"expected {dim} (the dimension of line {dim_line})")
            if not np.isfinite(row).all():
                raise ValueError(f"{path}, line {lineno}: {id_field} {token!r} contains NaN/Inf")
            if token in first_line:
                raise ValueError(f"{path}, line {lineno}: duplicate {id_field} {token!r} "
                                 f"(first seen on line {first_line[token]})")
            if known_tokens is not None and token not in known_tokens:
                raise ValueError(f"{path}, line {lineno}: unknown {id_field} {token!r}: "
                                 f"no {side} with this id in the dataset's interaction/{side} files")
            first_line[token] = lineno
            tokens.append(token)
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no embedding rows after the header (empty file)")
    return tokens, np.stack(rows)


def _read_jsonl(path):
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or "id" not in obj or not isinstance(obj.get("text"), str):
                raise ValueError(f"{path}, line {lineno}: expected an object with 'id' and a str 'text'")
            pairs.append((str(obj["id"]), obj["text"], lineno))
    return pairs


def _read_rlmrec_pickle(path):
    data = safe_load_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict {{id: {{'profile': str, ...}}}}, got {type(data).__name__}")
    pairs = []
    for pos, (key, val) in enumerate(data.items(), start=1):  # a pickle has no lines: report the entry number
        text = val.get("profile") if isinstance(val, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"{path}, entry {pos} (id {key!r}): expected {{'profile': str, ...}}")
        pairs.append((str(key), text, pos))
    return pairs


def read_profile_file(path, side, known_tokens=None):
    """Read user/item profile texts from ``.jsonl`` or RLMRec ``.pkl``; return ``{token: text}``.

    Empty files, blank texts, duplicate ids and ids outside ``known_tokens`` raise ``ValueError`` naming the
    file and line (entry number for pickles).
    """
    path = Path(path)
    pairs = _read_rlmrec_pickle(path) if path.suffix == ".pkl" else _read_jsonl(path)
    if not pairs:
        raise ValueError(f"{path}: empty profile file (no {side} profiles)")
    texts, where = {}, "entry" if path.suffix == ".pkl" else "line"
    seen = {}
    for token, text, pos in pairs:
        if not text.strip():
            raise ValueError(f"{path}, {where} {pos}: {side} {token!r} has an empty profile text")
        if token in seen:
            raise ValueError(f"{path}, {where} {pos}: duplicate {side} id {token!r} (first at {where} {seen[token]})")
        if known_tokens is not None and token not in known_tokens:
            raise ValueError(f"{path}, {where} {pos}: unknown {side} id {token!r}: not in the dataset")
        seen[token] = pos
        texts[token] = text
    return texts


def write_embedding_file(path, side, tokens, matrix):
    """Atomically write ``tokens`` / ``matrix`` rows as an embedding atomic file ('%.9g' round-trips float32)."""
    _, id_field, emb_field = EMB_FIELDS[side]
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(tokens) or not np.isfinite(matrix).all():
        raise ValueError(f"{path}: refusing to write {matrix.shape} rows for {len(tokens)} ids (or non-finite)")
    fmt = " ".join(["%.9g"] * matrix.shape[1])
    with atomic_path(path, SEMANTIC_MODE) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{id_field}:token\t{emb_field}:float_seq\n")
        for token, row in zip(tokens, matrix.tolist()):
            fh.write(f"{token}\t{fmt % tuple(row)}\n")


def write_profile_file(path, texts):
    """Atomically write ``{token: text}`` as JSON lines ``{"id": token, "text": text}``."""
    with atomic_path(path, SEMANTIC_MODE) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for token, text in texts.items():
            fh.write(json.dumps({"id": token, "text": text}, ensure_ascii=False) + "\n")
