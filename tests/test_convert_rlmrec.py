"""Tests of the RLMRec -> RecBole converter and of the restricted unpickler it reads with."""
import importlib
import json
import pickle
import pickletools
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp
from pathlib import Path

from recbole_darec.data.sources import shared_data_dir
from recbole_darec.data.safe_pickle import UnsafePickleError, safe_load_pickle

# The package attribute `convert_rlmrec` is shadowed by the submodule of that name: import the module explicitly.
conv = importlib.import_module("recbole_darec.data.convert_rlmrec")

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_data_dir() / "rlmrec"
# users, items, train, valid, test: the table of dataset/README.md (RLMRec's published statistics).
EXPECTED = {"yelp": ("yelp", 11091, 11010, 166620, 55479, 55436),
            "amazon": ("amazon-book", 11000, 9332, 120464, 40290, 40106)}


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def _make_src(folder, n_users=6, n_items=5, seed=0, **extra):
    """Write a tiny RLMRec-style folder: generated stand-in matrices (disjoint splits) plus any extra pickles."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cells = rng.permutation(n_users * n_items)[: 3 * n_users]
    for k, name in enumerate(("trn_mat.pkl", "val_mat.pkl", "tst_mat.pkl")):
        part = cells[k * n_users:(k + 1) * n_users]
        mat = sp.coo_matrix((np.ones(len(part)), (part // n_items, part % n_items)), shape=(n_users, n_items))
        (folder / name).write_bytes(pickle.dumps(mat, protocol=4))  # RLMRec's files are protocol 4
    for name, obj in extra.items():
        (folder / f"{name}.pkl").write_bytes(pickle.dumps(obj))  # default protocol 5: exercises _frombuffer
    return folder


# ---------------------------------------------------------------- real data (shared/data/rlmrec)
@pytest.mark.parametrize("src", [pytest.param(s, marks=pytest.mark.needs_data(f"rlmrec/{s}"))
                                 for s in sorted(EXPECTED)])
def test_real_rlmrec_counts_match_readme(src, tmp_path, capsys):
    name, n_users, n_items, *counts = EXPECTED[src]
    out = conv.convert_rlmrec(SHARED / src, name, tmp_path)
    assert out == tmp_path / name
    assert f"{n_users} users x {n_items} items" in capsys.readouterr().out
    users, items = set(), set()
    for split, count in zip(("train", "valid", "test"), counts):
        lines = _lines(out / f"{name}.{split}.inter")
        assert lines[0] == "user_id:token\titem_id:token"
        assert len(lines) == count + 1
        pairs = [tuple(map(int, line.split("\t"))) for line in lines[1:]]
        assert pairs == sorted(pairs)  # sorted by user, then item
        users.update(u for u, _ in pairs)
        items.update(i for _, i in pairs)
    assert max(users) == n_users - 1 and max(items) == n_items - 1


@pytest.mark.parametrize("name", ["yelp", "amazon-book"])
def test_rlmrec_splits_are_not_shipped(name):
    tracked = subprocess.run(["git", "ls-files", f"dataset/{name}"], cwd=REPO, capture_output=True, text=True)
    assert tracked.returncode == 0 and tracked.stdout.strip() == ""


# ---------------------------------------------------------------- pickles are code
def _reduce_pickle(func, arg):
    """Pickle bytes that would call func(arg) on load; built without ever loading them unrestricted."""
    class Evil:
        def __reduce__(self):
            return func, (arg,)
    return pickle.dumps(Evil(), protocol=4)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "hand-written GLOBAL opcode"])
def test_malicious_pickle_is_refused_without_side_effect(kind, tmp_path):
    import builtins
    import os
    marker = tmp_path / "pwned"
    if kind == "os.system":
        data, refused = _reduce_pickle(os.system, f"touch {marker}"), f"{os.system.__module__}.system"
    elif kind == "builtins.eval":
        data, refused = _reduce_pickle(builtins.eval, f"open({str(marker)!r}, 'w')"), "builtins.eval"
    else:  # protocol 0 by hand: GLOBAL 'posix system', MARK, STRING, TUPLE, REDUCE, STOP
        data, refused = f"cposix\nsystem\n(S'touch {marker}'\ntR.".encode(), "posix.system"
    ops = {op.name for op, _, _ in pickletools.genops(data)}
    assert "REDUCE" in ops and refused.split(".")[-1].encode() in data  # it really is a call to that global
    src = _make_src(tmp_path / "src")
    (src / "trn_mat.pkl").write_bytes(data)
    with pytest.raises(UnsafePickleError, match=rf"trn_mat\.pkl.*'{refused}'"):
        safe_load_pickle(src / "trn_mat.pkl")
    with pytest.raises(UnsafePickleError, match=refused):
        conv.convert_rlmrec(src, "evil", tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_safe_loader_admits_numpy_and_sparse_types(tmp_path):
    objs = [np.arange(6, dtype=np.float32).reshape(2, 3), sp.csr_matrix(np.eye(3)), sp.csc_matrix(np.eye(2)),
            sp.coo_array(np.eye(2)), {np.int64(1): {"profile": "p", "reasoning": "r"}, 2: [1.5, "x", (3,)]}]
    for k, obj in enumerate(objs):
        for protocol in (2, 4, 5):
            path = tmp_path / f"{k}-{protocol}.pkl"
            path.write_bytes(pickle.dumps(obj, protocol=protocol))
            got = safe_load_pickle(path)
            if sp.issparse(obj):
                assert type(got) is type(obj) and (got != obj).nnz == 0
            elif isinstance(obj, np.ndarray):
                np.testing.assert_array_equal(got, obj)
            else:
                assert got == obj
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.pkl"):
        safe_load_pickle(tmp_path / "junk.pkl")


# ---------------------------------------------------------------- validation and atomicity
def test_wrong_embedding_row_count_is_refused(tmp_path):
    # Generated stand-in: 7 rows for 6 users.
    src = _make_src(tmp_path / "src", usr_emb_np=np.zeros((7, 4), np.float32))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"usr_emb_np\.pkl.*7 rows.*6 users"):
        conv.convert_rlmrec(src, "toy", out)
    assert not out.exists() or not any(out.iterdir())


def test_user_and_item_embedding_widths_must_agree(tmp_path, capsys):
    src = _make_src(tmp_path / "src", usr_emb_np=np.zeros((6, 16), np.float32), itm_emb_np=np.zeros((5, 8), np.float32))
    out = tmp_path / "out"
    assert conv.main([str(src), "toy", "--out-dir", str(out)]) == 2  # a user error, as in every CLI
    err = capsys.readouterr().err
    assert "usr_emb_np.pkl has 16 columns" in err and "itm_emb_np.pkl has 8" in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case, pattern", [
    ("nan", r"itm_emb_np\.pkl: row 3 "), ("1d", r"usr_emb_np\.pkl: expected a 2-D"),
    ("value", r"val_mat\.pkl: values must all be exactly 1"), ("shape", r"tst_mat\.pkl: shape"),
    ("empty", r"tst_mat\.pkl: split is empty"), ("overlap", r"trn_mat\.pkl and .*val_mat\.pkl: 1 \(user, item\)"),
    ("profile", r"usr_prf\.pkl: key 9 is not a user id"), ("missing", r"val_mat\.pkl: required")])
def test_bad_input_names_the_file(case, pattern, tmp_path):
    src = _make_src(tmp_path / "src")
    trn = safe_load_pickle(src / "trn_mat.pkl")
    put = lambda name, obj: (src / name).write_bytes(pickle.dumps(obj))  # noqa: E731
    if case == "nan":
        emb = np.ones((5, 3))
        emb[3, 1] = np.nan
        put("itm_emb_np.pkl", emb)
    elif case == "1d":
        put("usr_emb_np.pkl", np.ones(6))
    elif case == "value":
        put("val_mat.pkl", sp.coo_matrix(([2.0], ([0], [0])), shape=trn.shape))
    elif case == "shape":
        put("tst_mat.pkl", sp.coo_matrix(([1.0], ([0], [0])), shape=(6, 4)))
    elif case == "empty":
        put("tst_mat.pkl", sp.coo_matrix(trn.shape))
    elif case == "overlap":
        put("val_mat.pkl", sp.coo_matrix(([1.0], ([trn.row[0]], [trn.col[0]])), shape=trn.shape))
    elif case == "profile":
        put("usr_prf.pkl", {9: {"profile": "x", "reasoning": ""}})
    else:
        (src / "val_mat.pkl").unlink()
    with pytest.raises(ValueError if case != "missing" else FileNotFoundError, match=pattern):
        conv.convert_rlmrec(src, "toy", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    src, out = _make_src(tmp_path / "src"), tmp_path / "out"
    real_write = conv._write_inter

    def crash_on_test_split(path, mat):
        if path.name.endswith(".test.inter"):
            path.write_text("user_id:token\titem_id:token\n0\t")  # half a file, then the "crash"
            raise KeyboardInterrupt("simulated interruption")
        real_write(path, mat)

    monkeypatch.setattr(conv, "_write_inter", crash_on_test_split)
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        conv.convert_rlmrec(src, "toy", out)
    assert list(out.iterdir()) == []  # neither out/toy nor a hidden temp dir

    # With --force over an existing dataset, a crash keeps the previous version intact.
    monkeypatch.setattr(conv, "_write_inter", real_write)
    conv.convert_rlmrec(src, "toy", out, verbose=False)
    before = {p.name: p.read_bytes() for p in (out / "toy").iterdir()}
    monkeypatch.setattr(conv, "_write_inter", crash_on_test_split)
    with pytest.raises(KeyboardInterrupt):
        conv.convert_rlmrec(src, "toy", out, force=True)
    assert [p.name for p in out.iterdir()] == ["toy"]
    assert {p.name: p.read_bytes() for p in (out / "toy").iterdir()} == before


def test_existing_target_needs_force(tmp_path, capsys):
    src, out = _make_src(tmp_path / "src"), tmp_path / "out"
    conv.convert_rlmrec(src, "toy", out, verbose=False)
    with pytest.raises(FileExistsError, match="--force"):
        conv.convert_rlmrec(src, "toy", out)
    assert conv.main([str(src), "toy", "--out-dir", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["toy"]
    capsys.readouterr()
    assert conv.main([str(src), "toy", "--out-dir", str(out)]) == 2
    # the shared user-error line of every CLI (cli_errors.run_cli): prog, the target, the fix; no traceback
    assert capsys.readouterr().err.splitlines() == [
        f"python -m recbole_darec.data.convert_rlmrec: error: {out / 'toy'} already exists; "
        "pass --force (force=True) to replace it"]


def test_embeddings_and_profiles_round_trip(tmp_path, capsys):
    # Generated stand-ins (not real LLM output): random float64 "embeddings" and template profile texts.
    rng = np.random.default_rng(1)
    usr_emb, itm_emb = rng.normal(size=(6, 8)), rng.normal(size=(5, 8)).astype(np.float32) * 1e-3
    usr_prf = {u: {"profile": f"stand-in profile of user {u} \u00e9\n\"quoted\"", "reasoning": f"why {u}"}
               for u in range(6)}
    itm_prf = {np.int64(i): {"profile": f"item {i}", "reasoning": ""} for i in (0, 2, 4)}  # partial coverage
    src = _make_src(tmp_path / "src", usr_emb_np=usr_emb, itm_emb_np=itm_emb, usr_prf=usr_prf, itm_prf=itm_prf)
    out = conv.convert_rlmrec(src, "toy", tmp_path / "out")
    printed = capsys.readouterr().out
    assert "toy.useremb" in printed and "itemprofile covers 3 of 5" in printed

    for suffix, id_field, emb_field, emb in (("useremb", "uid", "user_emb", usr_emb),
                                             ("itememb", "iid", "item_emb", itm_emb)):
        lines = _lines(out / f"toy.{suffix}")
        assert lines[0] == f"{id_field}:token\t{emb_field}:float_seq"
        ids = [line.split("\t")[0] for line in lines[1:]]
        parsed = np.array([[float(x) for x in line.split("\t")[1].split(" ")] for line in lines[1:]])
        assert ids == [str(k) for k in range(len(emb))]
        np.testing.assert_array_equal(parsed.astype(np.float32), emb.astype(np.float32))

    user_rows = [json.loads(line) for line in _lines(out / "toy.userprofile.jsonl")]
    assert len(user_rows) == 6  # one line per user
    assert user_rows[2] == {"id": "2", "text": usr_prf[2]["profile"], "reasoning": "why 2"}
    item_rows = [json.loads(line) for line in _lines(out / "toy.itemprofile.jsonl")]
    assert [r["id"] for r in item_rows] == ["0", "2", "4"]
