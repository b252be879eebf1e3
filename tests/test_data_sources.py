"""Dataset resolution (--data_path, dataset/, original files beside the checkout -> cache) and the UniSRec and
ReChorus converters, on the real amazon_scientific / amazon_office files and on small generated stand-ins."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recbole_darec import Config
from recbole_darec.data import sources
from recbole_darec.cli_errors import run_cli
from recbole_darec.data.convert_rechorus import convert_rechorus, main as rechorus_main
from recbole_darec.data.convert_unisrec import convert_unisrec, read_item_text

REPO = Path(__file__).resolve().parents[1]
SCIENTIFIC = sources.shared_data_dir() / "amazon_scientific"
needs_scientific = pytest.mark.needs_data("amazon_scientific")
OFFICE = sources.shared_data_dir() / "amazon_office"
needs_office = pytest.mark.needs_data("amazon_office")


def _write_unisrec(folder, sequences, texts):
    """Generated stand-in UniSRec files (prefix Scientific) for {user: [items]} and {asin: text}."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    train, valid, test = [header], [header], [header]
    for user, seq in sequences.items():
        for end in range(len(seq) - 3, 0, -1):  # newest first, as UniSRec writes them
            train.append(f"{user}\t{' '.join(seq[:end])}\t{seq[end]}\n")
        valid.append(f"{user}\t{' '.join(seq[:-2])}\t{seq[-2]}\n")
        test.append(f"{user}\t{' '.join(seq[:-1])}\t{seq[-1]}\n")
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"Scientific.{name}.inter").write_text("".join(rows))
    (folder / "Scientific.item2index").write_text("".join(f"A{i}\t{i}\n" for i in range(len(texts))))
    (folder / "Scientific.text").write_text("item_id:token\ttext:token_seq\n" +
                                            "".join(f"A{i}\t{t}\n" for i, t in enumerate(texts)))
    return folder


def _read(path):
    return pd.read_csv(path, sep="\t", dtype=str)


def test_unisrec_conversion_dedups_and_keeps_published_targets(tmp_path):
    texts = [f"Item {i}. Industrial & Scientific Tools. Brand{i}. " for i in range(8)]
    # user 0 repeats item 1 in training and has its test item (5) in training too; user 1: valid == test
    src = _write_unisrec(tmp_path / "src", {"0": ["0", "1", "5", "1", "2", "3", "5"],
                                            "1": ["4", "6", "7", "2", "2"]}, texts)
    out = convert_unisrec(src, "sci", out_dir=tmp_path / "out", verbose=False)
    train, valid, test = (_read(out / f"sci.{s}.inter") for s in ("train", "valid", "test"))
    assert list(test["item_id:token"]) == ["5", "2"]
    assert list(valid["item_id:token"]) == ["3"]  # user 1's valid item equals its test item: dropped
    user0 = train[train["user_id:token"] == "0"]
    assert list(user0["item_id:token"]) == ["0", "1", "2"]  # 5 (test) removed, 1 kept once
    assert list(user0["timestamp:float"]) == ["0", "3", "4"]  # the latest position of the repeated item
    pairs = pd.concat([train, valid, test])[["user_id:token", "item_id:token"]]
    assert not pairs.duplicated().any()
    items = pd.read_csv(out / "sci.item", sep="\t", dtype=str, quoting=3)
    assert items.loc[0, "title:token"] == "Item 0" and items.loc[0, "text:token"].startswith("Item 0.")


def test_unisrec_bad_header_names_the_file(tmp_path):
    src = _write_unisrec(tmp_path / "src", {"0": ["0", "1", "2", "3"]}, ["a. . b."] * 4)
    (src / "Scientific.valid.inter").write_text("user:token\titems:token_seq\n0\t1\n")
    with pytest.raises(ValueError, match="Scientific.valid.inter"):
        convert_unisrec(src, "sci", out_dir=tmp_path / "out", verbose=False)
    assert not (tmp_path / "out" / "sci").exists()


@needs_scientific
def test_real_scientific_counts():
    root = sources.locate("amazon-scientific")
    folder = Path(root) / "amazon-scientific"
    frames = {s: _read(folder / f"amazon-scientific.{s}.inter") for s in ("train", "valid", "test")}
    pairs = pd.concat(frames.values())
    # 59,427 interactions, 291 repeated pairs: 59,136 unique pairs, each in exactly one split
    assert len(pairs) == 59136 and not pairs.duplicated(subset=["user_id:token", "item_id:token"]).any()
    assert len(frames["test"]) == 8442 and frames["test"]["user_id:token"].nunique() == 8442
    assert len(read_item_text(SCIENTIFIC, "Scientific")) == 4385
    assert str(root).startswith(str(sources.CACHE_DIR))  # converted into the ignored cache, never into dataset/


@needs_scientific
def test_config_resolves_scientific_from_data_path_with_original_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "cache")
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in sources.SOURCES["amazon-scientific"].files:
        (raw / name).symlink_to(SCIENTIFIC / name)
    config = Config(model="BPR", dataset="amazon-scientific", config_dict={"data_path": str(raw), "state": "WARNING"})
    assert Path(config["data_path"]).parent.parent == sources.CACHE_DIR
    assert (Path(config["data_path"]) / "amazon-scientific.train.inter").is_file()
    assert config["embedding_size"] == 64 and config["benchmark_filename"] == ["train", "valid", "test"]


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RECBOLE_DAREC_SHARED_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(sources, "DATASET_DIR", tmp_path / "dataset")
    with pytest.raises(FileNotFoundError, match="convert_unisrec"):
        Config(model="BPR", dataset="amazon-scientific", config_dict={"state": "WARNING"})


def test_cache_is_reconverted_when_the_source_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "cache")
    texts = [f"Item {i}. . B. " for i in range(6)]
    src = _write_unisrec(tmp_path / "src", {"0": ["0", "1", "2", "3"]}, texts)
    root = sources.converted_root("amazon-scientific", src)
    first = (root / "amazon-scientific" / "amazon-scientific.test.inter").read_text()
    assert sources.converted_root("amazon-scientific", src) == root  # fresh: reused
    _write_unisrec(src, {"0": ["0", "1", "2", "4", "5"]}, texts)
    again = sources.converted_root("amazon-scientific", src)
    assert (again / "amazon-scientific" / "amazon-scientific.test.inter").read_text() != first
    assert [p.name for p in again.iterdir()] == ["amazon-scientific"]  # no staging folder left behind


def test_compare_accepts_data_path_from_a_config_file(tmp_path):
    """run_compare resolves the dataset like a training run: a data_path in a YAML is enough."""
    data = tmp_path / "data" / "tiny"
    data.mkdir(parents=True)
    rows = ["user_id:token\titem_id:token"] + [f"{u}\t{(u * 7 + k) % 40}" for u in range(30) for k in range(6)]
    (data / "tiny.inter").write_text("\n".join(rows) + "\n")
    yaml_file = tmp_path / "tiny.yaml"
    yaml_file.write_text(f"data_path: {tmp_path / 'data'}\n")
    from recbole_darec.report.validate import validate

    validate(["BPR"], "tiny", [str(yaml_file)], {})  # raised "unknown dataset" before


def test_cache_survives_a_copied_source_with_new_mtimes(tmp_path, monkeypatch):
    # A re-copied source folder has new mtimes but the same bytes: the converted folder, and what was derived in
    # it (LLM embeddings take minutes to encode), must stay.
    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "cache")
    src = _write_unisrec(tmp_path / "src", {"0": ["0", "1", "2", "3"]}, [f"Item {i}. . B. " for i in range(6)])
    root = sources.converted_root("amazon-scientific", src)
    derived = root / "amazon-scientific" / "amazon-scientific.itememb"
    derived.write_bytes(b"derived")
    for f in src.iterdir():
        os.utime(f, ns=(f.stat().st_atime_ns + 10**9, f.stat().st_mtime_ns + 10**9))
    assert sources.converted_root("amazon-scientific", src) == root
    assert derived.read_bytes() == b"derived"


@pytest.mark.parametrize("ci, outcome", [("", "1 skipped"), ("True", "1 error")])
def test_a_data_test_without_its_data_skips_with_where_to_get_it_or_errors_under_ci(tmp_path, ci, outcome):
    """A fresh clone has no shared/data beside it: a test that reads yelp skips and says where to get the split;
    under CI, where the data is always mounted, the same absence must not pass silently."""
    env = {**os.environ, "RECBOLE_DAREC_SHARED_DATA": str(tmp_path / "nowhere"), "CI": ci}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "tests/test_cli_end_to_end.py::test_yelp_means_the_rlmrec_split"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == (1 if ci else 0), log[-3000:]
    assert outcome in log and str(tmp_path / "nowhere" / "rlmrec" / "yelp") in log and "HKUDS/RLMRec" in log


def _write_rechorus(folder, train, dev, test, texts=None):
    """Generated stand-in ReChorus folder: rows (user, item, time); dev/test get a neg_items column like
    ReChorus'; ``texts`` {asin: text} adds Shop.text and Shop.item2index (asin A<i> -> item i)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text("user_id\titem_id\ttime\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in train))
    for name, rows in (("dev.csv", dev), ("test.csv", test)):
        (folder / name).write_text("user_id\titem_id\ttime\tneg_items\n" +
                                   "".join(f"{u}\t{i}\t{t}\t[{i + 1}, {i + 2}, 99]\n" for u, i, t in rows))
    if texts is not None:
        (folder / "Shop.text").write_text("id\ttext\n" + "".join(f"{a}\t{t}\n" for a, t in texts.items()))
        (folder / "Shop.item2index").write_text("".join(f"{a}\t{a[1:]}\n" for a in texts))
    return folder


def _shop(folder):
    train = [(1, 1, 100), (1, 2, 200), (1, 1, 300), (2, 2, 100), (2, 3, 100), (3, 1, 50), (3, 4, 60)]
    dev, test = [(1, 3, 400), (2, 4, 200), (3, 2, 70)], [(1, 4, 500), (2, 5, 300), (3, 2, 80)]
    texts = {f"A{i}": f"Pen {i}  with\tink Office Brand{i}" for i in range(1, 6)}
    return _write_rechorus(folder, train, dev, test, texts)


def test_rechorus_conversion_maps_text_and_ignores_neg_items(tmp_path, capsys):
    src = _shop(tmp_path / "src")
    out = convert_rechorus(src, "shop", out_dir=tmp_path / "out")
    assert "shop: 3 users x 5 items; train/valid/test = 6/2/3" in capsys.readouterr().out
    train, valid, test = (_read(out / f"shop.{s}.inter") for s in ("train", "valid", "test"))
    assert list(train.columns) == ["user_id:token", "item_id:token", "timestamp:float"]  # no neg_items
    # user 1 repeats item 1 in training (its last row kept); user 3's dev item is its test item (test wins)
    assert train.values.tolist() == [["1", "2", "200"], ["1", "1", "300"], ["2", "2", "100"], ["2", "3", "100"],
                                     ["3", "1", "50"], ["3", "4", "60"]]
    assert valid.values.tolist() == [["1", "3", "400"], ["2", "4", "200"]]
    assert test.values.tolist() == [["1", "4", "500"], ["2", "5", "300"], ["3", "2", "80"]]  # item 5: test only
    items = pd.read_csv(out / "shop.item", sep="\t", dtype=str, quoting=3)
    assert list(items.columns) == ["item_id:token", "text:token"]
    assert dict(items.values.tolist()) == {str(i): f"Pen {i} with ink Office Brand{i}" for i in range(1, 6)}


def test_rechorus_without_text_writes_no_item_file(tmp_path):
    src = _write_rechorus(tmp_path / "src", [(1, 1, 1), (1, 2, 2)], [(1, 3, 3)], [(1, 4, 4)])
    out = convert_rechorus(src, "bare", out_dir=tmp_path / "out", verbose=False)
    assert sorted(p.name for p in out.iterdir()) == ["bare.test.inter", "bare.train.inter", "bare.valid.inter"]


@pytest.mark.parametrize("break_it, culprit", [
    (lambda src: (src / "dev.csv").unlink(), "dev.csv: required ReChorus file is missing"),
    (lambda src: (src / "train.csv").write_text("uid\titem_id\ttime\n1\t1\t1\n"), "train.csv, line 1: expected"),
    (lambda src: (src / "test.csv").write_text("user_id\titem_id\ttime\n9\t1\t1\n"),
     "test.csv, line 2: user '9' has no row in train.csv"),
    (lambda src: (src / "train.csv").write_text("user_id\titem_id\ttime\n1\t1\tnoon\n"),
     "train.csv, line 2: time 'noon' is not a number"),
    (lambda src: (src / "Shop.text").write_text("id\ttext\nA1\tx\nB7\ty\n"),
     "Shop.text, line 3: id 'B7' is not in Shop.item2index"),
    (lambda src: (src / "Shop.text").write_text("id\ttext\nA1\tx\n"), "Shop.text: no text for item_id 2"),
    (lambda src: (src / "Other.text").write_text("id\ttext\n"), "several *.text files (Other.text, Shop.text)"),
])
def test_rechorus_errors_are_one_line_and_write_nothing(tmp_path, capsys, break_it, culprit):
    src = _shop(tmp_path / "src")
    break_it(src)
    status = run_cli(rechorus_main, "python -m recbole_darec.data.convert_rechorus",
                     [str(src), "shop", f"--out-dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("python -m recbole_darec.data.convert_rechorus: error: ") and culprit in err[0]
    assert not (tmp_path / "out").exists()


def test_rechorus_files_can_be_named(tmp_path):
    src = _shop(tmp_path / "src")
    (src / "Shop.text").rename(src / "meta.tsv")
    (src / "Shop.item2index").rename(src / "ids.tsv")
    out = convert_rechorus(src, "shop", out_dir=tmp_path / "out", text="meta.tsv", item2index="ids.tsv",
                           verbose=False)
    assert (out / "shop.item").read_text().splitlines()[1] == "1\tPen 1 with ink Office Brand1"


def test_missing_office_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RECBOLE_DAREC_SHARED_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(sources, "DATASET_DIR", tmp_path / "dataset")
    with pytest.raises(FileNotFoundError, match="convert_rechorus"):
        Config(model="BPR", dataset="amazon-office", config_dict={"state": "WARNING"})


@needs_office
def test_real_office_counts():
    root = sources.locate("amazon-office")
    folder = Path(root) / "amazon-office"
    frames = {s: _read(folder / f"amazon-office.{s}.inter") for s in ("train", "valid", "test")}
    assert [len(f) for f in frames.values()] == [43448, 4905, 4905]
    pairs = pd.concat(frames.values())
    assert not pairs.duplicated(subset=["user_id:token", "item_id:token"]).any()
    assert pairs["user_id:token"].nunique() == 4905 and pairs["item_id:token"].nunique() == 2420
    items = pd.read_csv(folder / "amazon-office.item", sep="\t", dtype=str, quoting=3)
    assert len(items) == 2420 and items["text:token"].str.len().min() > 0
    # Office.item2index maps B00000JBLU to an item id; that item carries Office.text's line for it
    index = dict(line.split("\t") for line in (OFFICE / "Office.item2index").read_text().splitlines())
    text = dict(items.values.tolist())[index["B00000JBLU"]]
    assert text.startswith("Texas Instruments TI-1795 SV")
    assert str(root).startswith(str(sources.CACHE_DIR))  # converted into the ignored cache, never into dataset/
