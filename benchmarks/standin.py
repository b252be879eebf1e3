"""GENERATED STAND-IN LLM embedding files for the benchmarks: random rows of the right shape, never real LLM output.

Only the cost of the LLM side is measured, so any values do: each is one of 256 standard-normal quantiles written
with two decimals ('+0.12'), drawn per value as bytes -- ~100x faster than formatting floats, which matters for
yelp x10's 1536-d tables. The files are RecBole atomic files as the semantic loader reads them
(``<ds>.useremb``: ``uid:token<TAB>user_emb:float_seq``, ``<ds>.itememb``: ``iid:token<TAB>item_emb:float_seq``).
"""
from pathlib import Path

import numpy as np

SIDES = (("useremb", "uid", "user_emb"), ("itememb", "iid", "item_emb"))
CHUNK = 2048  # rows drawn at once: keeps the uint8 index block small at 1536-d


def _level_tokens():
    """(256, 6) uint8: '+0.12 ' for each of 256 equal-probability standard-normal levels (all within +-2.9)."""
    from scipy.stats import norm

    levels = norm.ppf((np.arange(256) + 0.5) / 256)
    return np.frombuffer(b"".join(b"%+.2f " % v for v in levels), np.uint8).reshape(256, 6)


def write_standin_embeddings(folder, dataset, user_ids, item_ids, dim, seed):
    """Write ``folder/<dataset>.useremb`` and ``.itememb``: one ``dim``-wide random row per id, in the given order.

    One generator (``seed``) draws the users' rows, then the items': the same ids, width and seed give the same
    files.
    """
    tokens = _level_tokens()
    rng = np.random.default_rng(seed)
    for ids, (ext, id_col, emb_col) in zip((list(user_ids), list(item_ids)), SIDES):
        with open(Path(folder) / f"{dataset}.{ext}", "wb") as fh:
            fh.write(f"{id_col}:token\t{emb_col}:float_seq\n".encode())
            for start in range(0, len(ids), CHUNK):
                block = ids[start:start + CHUNK]
                rows = tokens[rng.integers(0, 256, (len(block), dim), dtype=np.uint8)].reshape(len(block), dim * 6)
                rows[:, -1] = ord("\n")  # the last value's trailing space ends the line
                for token, row in zip(block, rows):
                    fh.write(f"{token}\t".encode())
                    fh.write(row.tobytes())
