"""LLM side: encoder parity, real semantic signal, no leakage, id alignment, bad input, cache behaviour.

Real MiniLM encoding is limited to what needs it (3 reference sentences, a 300-item subset, 18 texts for the
batching, the toy dataset's 8 profiles for per-text reuse); everything else about files, ids and caching uses a
tiny deterministic stand-in encoder so the suite stays fast on 2 cores.
"""
import contextlib
import hashlib
import json
import logging
import pickle
import shutil

import numpy as np
import pytest
import torch

from recbole.model.general_recommender import BPR

from recbole_darec import Config
from recbole_darec.paths import DATASET_DIR
from recbole_darec.semantic import (TextEncoder, default_encoder_path, ensure_semantic_embeddings,
                                    generate_profile_texts, register_semantic_buffers)
from recbole_darec.cli_errors import run_cli
from recbole_darec.semantic.__main__ import main as cli_main
from recbole_darec.semantic.files import read_embedding_file, write_embedding_file
from recbole_darec.semantic.profiles import item_texts, profile_settings, read_atomic
from recbole_darec.semantic.split import pairs_from_dataset, train_fingerprint


class FakeEncoder:
    """Deterministic stand-in: a text's sha256 bytes as a unit vector (same text -> same row)."""

    def __init__(self, dim=8, name="fake"):
        self.dim, self.identity, self.calls = dim, {"encoder": name}, 0

    def encode(self, texts, show_progress=True, desc=""):
        self.calls += 1
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8)[:self.dim] for t in texts]
        rows = np.stack(rows).astype(np.float32) + 1
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def minilm():
    return TextEncoder(batch_size=32)


def _write(path, header, rows):
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(map(str, r)) for r in rows]) + "\n")


@pytest.fixture
def toy(tmp_path):
    """A benchmark-file dataset with item/user text: users u1..u3, items i1..i5."""
    root = tmp_path / "toy"
    root.mkdir()
    inter = ["user_id:token", "item_id:token", "timestamp:float"]
    _write(root / "toy.train.inter", inter, [("u1", "i1", 1), ("u1", "i2", 2), ("u2", "i2", 1), ("u3", "i3", 1)])
    _write(root / "toy.valid.inter", inter, [("u1", "i3", 3), ("u2", "i3", 2), ("u3", "i1", 2)])
    _write(root / "toy.test.inter", inter, [("u1", "i4", 4), ("u2", "i1", 3), ("u3", "i2", 3)])
    _write(root / "toy.item", ["item_id:token", "title:token_seq", "genre:token_seq", "price:float"],
           [("i1", "Alpha Movie", "Drama", 1.5), ("i2", "Beta Film", "Comedy Drama", 2), ("i3", "Gamma", "Horror", 3),
            ("i4", "Delta", "Action", 4), ("i5", "Epsilon", "Action", 5)])  # i5: never interacted
    _write(root / "toy.user", ["user_id:token", "age:token"], [("u1", 20), ("u2", 30), ("u3", 40)])
    return root


def toy_config(root, **extra):
    cfg = {"data_path": str(root.parent), "benchmark_filename": ["train", "valid", "test"], "normalize_all": True,
           "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title", "genre", "price"],
                        "user": ["user_id", "age"]}, "state": "WARNING", "semantic_show_progress": False, **extra}
    return Config(model="BPR", dataset=root.name, config_dict=cfg)


def _load_run(config):
    """Dataset and loaders exactly as single_run.build makes them (prepare_data already ran)."""
    from recbole.data import create_dataset

    from recbole_darec.data.protocol import data_preparation
    dataset = create_dataset(config)
    return dataset, data_preparation(config, dataset)


def _snapshot(folder):  # every file, including the <ds>.semantic-cache/ entries
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- encoder

def test_encoder_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."]
    ours = minilm.encode(sentences, show_progress=False)
    ref = SentenceTransformer(str(default_encoder_path()), device="cpu").encode(sentences, convert_to_numpy=True)
    assert ours.shape == (3, 384) and minilm.max_length == 256
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert ours[0] @ ours[1] > 0.5 > 0.1 > ours[0] @ ours[2]  # measured: 0.755 vs 0.004


def test_item_neighbours_share_a_genre(minilm):
    """Nearest item (cosine) shares >= 1 genre far more often than a random item does.

    Measured on the 300-item subset below (seed 0, ml-100k item profiles "title (year). Genres: ..."):
    nearest neighbour 0.813 vs random item 0.313 (400 items: 0.85 vs 0.33). Titles alone, all 1682 items: 0.48 vs
    0.35 -- MiniLM knows a little about the films themselves, most of the signal is the genre words.
    """
    df, types = read_atomic(DATASET_DIR / "ml-100k" / "ml-100k.item")
    settings = profile_settings(Config(model="BPR", dataset="ml-100k", config_dict={"state": "WARNING"}))
    texts = item_texts(df, types, "item_id", settings)  # dataset_configs/ml-100k.yaml's templates
    genres = {r["item_id"]: set(r["class"].split()) for r in df.to_dict("records")}
    ids = list(np.random.default_rng(0).choice(sorted(texts, key=int), 300, replace=False))
    emb = minilm.encode([texts[i] for i in ids], show_progress=False)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(1)
    share = np.array([[bool(genres[a] & genres[b]) for b in ids] for a in ids])
    nn_rate = share[np.arange(len(ids)), nearest].mean()
    random_rate = (share.sum() - share.trace()) / (len(ids) * (len(ids) - 1))  # every ordered pair, exactly
    print(f"genre share: nearest neighbour {nn_rate:.3f}, random item {random_rate:.3f}")
    assert nn_rate > random_rate + 0.35 and nn_rate > 2 * random_rate


@contextlib.contextmanager
def _default_linears(model):
    """``model`` on torch's default Linear kernel, as the encoder ran before oneDNN (yields the layers switched)."""
    from recbole_darec.semantic.encoder import _OneDNNLinear

    switched = [m for m in model.modules() if type(m) is _OneDNNLinear]
    for module in switched:
        module.__class__ = torch.nn.Linear
    try:
        yield len(switched)
    finally:
        for module in switched:
            module.__class__ = _OneDNNLinear


@torch.inference_mode()
def _char_sorted_encode(enc, texts, batch_size=64):
    """The encoder's path before length bucketing: longest by characters first, fixed batches, each tokenised
    with padding to its longest text."""
    out = np.zeros((len(texts), enc.dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        batch = enc.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=enc.max_length,
                              return_tensors="pt")
        hidden = enc.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out[idx] = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    return out


def test_length_bucketed_batches_match_the_char_sorted_path(minilm, monkeypatch):
    """Texts grouped by token length, under a text and a token limit, and oneDNN's GEMM give the old path's rows
    in input order."""
    from recbole_darec.semantic import encoder as encoder_module
    from recbole_darec.semantic.encoder import _onednn_linear_works

    titles = [" ".join(t.split()) for t in read_atomic(DATASET_DIR / "ml-100k" / "ml-100k.item")[0]["movie_title"]]
    counts = [1, 30, 3, 40, 9, 2, 25, 5, 12, 14, 1, 60, 6, 22, 120]  # 8 to 600+ tokens, lengths shuffled
    texts = [f"Recently watched: {'; '.join(titles[k:k + n])}." for k, n in zip(range(0, 400, 20), counts)]
    texts += [texts[3], texts[0], texts[14]]  # repeated texts get the same row, encoded once
    full = [len(ids) for ids in minilm.tokenizer(texts)["input_ids"]]
    assert sum(n > minilm.max_length for n in full) == 3  # two distinct texts are truncated, one of them repeated
    lengths = [min(n, minilm.max_length) for n in full[:15]]
    monkeypatch.setattr(minilm, "batch_size", 4)
    monkeypatch.setattr(encoder_module, "CPU_BATCH_TOKENS", 600)  # long texts: 2 a batch; short ones: 4
    shapes = []
    hook = minilm.model.register_forward_pre_hook(lambda m, a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                                  with_kwargs=True)
    try:
        ours = minilm.encode(texts, show_progress=False)
    finally:
        hook.remove()
    with _default_linears(minilm.model) as switched:
        np.testing.assert_allclose(ours, _char_sorted_encode(minilm, texts), atol=1e-5, rtol=0)
    if _onednn_linear_works():  # x86 torch builds: every Linear layer (6 per block, 6 blocks, the pooler)
        assert switched == 37
    assert all(np.array_equal(ours[15 + k], ours[i]) for k, i in enumerate((3, 0, 14)))
    # 15 distinct texts by token length, each padded to the next multiple of 16 (at most 256), grouped greedily
    # among texts of one padded width
    rest = [min(-(-n // 16) * 16, minilm.max_length) for n in sorted(lengths, reverse=True)]
    expected = []
    while rest:
        n = next(n for n in range(min(4, len(rest)), 0, -1)
                 if len(set(rest[:n])) == 1 and (n == 1 or n * rest[0] <= 600))
        expected, rest = expected + [(n, rest[0])], rest[n:]
    assert shapes == expected and all(width % 16 == 0 or width == minilm.max_length for _, width in shapes)


def test_a_texts_vector_does_not_depend_on_what_it_is_encoded_with(minilm):
    """Padding depends on the text alone, so a text gets the same bits alone, in a batch, or among other texts
    (a rebuild that reuses some cached rows and encodes the rest gives a fresh encode's table)."""
    titles = [" ".join(t.split()) for t in read_atomic(DATASET_DIR / "ml-100k" / "ml-100k.item")[0]["movie_title"]]
    texts = [f"Recently watched: {'; '.join(titles[k:k + n])}." for k, n in zip(range(0, 300, 15), range(1, 21))]
    together = minilm.encode(texts, show_progress=False)
    alone = np.concatenate([minilm.encode([t], show_progress=False) for t in texts])
    subset = minilm.encode(texts[::3] + ["another text", "a third, longer text than the other one"],
                           show_progress=False)[:len(texts[::3])]
    assert np.array_equal(together, alone) and np.array_equal(together[::3], subset)


# ---------------------------------------------------------------------------------------------- profiles

def test_user_profile_uses_training_interactions_only(toy):
    base = generate_profile_texts(toy_config(toy))[0]
    assert base["item"]["i2"] == "title: Beta Film. genre: Comedy Drama. price: 2."
    assert "Beta Film" in base["user"]["u1"] and "Gamma" not in base["user"]["u1"]  # i3 is u1's valid item
    with open(toy / "toy.valid.inter", "a") as fh:
        fh.write("u1\ti4\t5\n")
    with open(toy / "toy.test.inter", "a") as fh:
        fh.write("u2\ti4\t5\n")
    assert generate_profile_texts(toy_config(toy))[0]["user"] == base["user"]
    with open(toy / "toy.train.inter", "a") as fh:
        fh.write("u1\ti4\t0\n")
    changed = generate_profile_texts(toy_config(toy))[0]["user"]
    assert changed["u1"] != base["user"]["u1"] and "Delta" in changed["u1"]
    assert {u: t for u, t in changed.items() if u != "u1"} == {u: t for u, t in base["user"].items() if u != "u1"}


class SemanticBPR(BPR):
    """What a plugin model does: build/check the files before RecBole loads the data, then take the buffers."""

    @classmethod
    def prepare_data(cls, config):
        ensure_semantic_embeddings(config, encoder=FakeEncoder())

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.d_llm = register_semantic_buffers(self, dataset)


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    """ml-100k copy run through single_run.build (seed -> prepare_data -> dataset -> split -> model)."""
    from recbole.utils import init_seed

    from recbole_darec.single_run import build
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(DATASET_DIR / "ml-100k", root / "ml-100k")
    config = Config(model=SemanticBPR, dataset="ml-100k",
                    config_dict={"data_path": str(root), "state": "WARNING", "embedding_size": 16})
    init_seed(config["seed"], config["reproducibility"])  # as run_recbole_darec does before build
    dataset, (train, _, _), model, _ = build(config)
    result = ensure_semantic_embeddings(config, encoder=FakeEncoder())  # a second call: all cached
    return root / "ml-100k", config, result, dataset, train, model


def test_ml100k_profiles_follow_the_runs_training_split(ml100k):
    folder, config, result, dataset, train, _ = ml100k
    assert result["user"]["count"] == 943 and result["item"]["count"] == 1682
    assert not any(r["rebuilt"] for r in result.values())
    manifest = json.loads((folder / "ml-100k.semantic.json").read_text())
    assert manifest["user"]["train_fingerprint"] == train_fingerprint(pairs_from_dataset(train.dataset))
    assert manifest["user"]["train_count"] == len(train.dataset.inter_feat) < len(dataset.inter_feat)
    # The injected keys don't move internal ids: same token table as a plain RecBole load of the same files.
    plain = Config(model="BPR", dataset="ml-100k", config_dict={"data_path": str(folder.parent), "state": "WARNING"})
    from recbole.data import create_dataset
    plain_ds = create_dataset(plain)
    for field in ("user_id", "item_id"):
        assert list(plain_ds.field2id_token[field]) == list(dataset.field2id_token[field])
    # Every title a profile lists is one of that user's training items (spot-check by token).
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (folder / "ml-100k.generated.userprofile.jsonl").read_text().splitlines()}
    pairs, all_pairs = pairs_from_dataset(train.dataset), pairs_from_dataset(dataset)
    titles = {r["item_id"]: " ".join(r["movie_title"].split())
              for r in read_atomic(folder / "ml-100k.item")[0].to_dict("records")}
    for user in ("1", "50", "405", "943"):
        listed = texts[user].split("Recently watched: ")[1].rstrip(".").split("; ")
        train_titles = {titles[i] for i in pairs.item[pairs.user == user]}
        held_out = {titles[i] for i in all_pairs.item[all_pairs.user == user]} - train_titles
        assert listed and all(t in train_titles for t in listed) and not set(listed) & held_out


def test_loaded_rows_line_up_with_field2id_token(ml100k):
    folder, config, _, dataset, train, model = ml100k
    assert model.d_llm == 8  # registered in __init__ with the training dataset, split check passed
    names = {n for n, _ in model.named_buffers()}
    assert names >= {"user_semantic", "item_semantic", "user_semantic_mask", "item_semantic_mask"}
    assert not [k for k in model.state_dict() if "semantic" in k]  # non-persistent: never in checkpoints
    assert model.user_semantic.shape == (dataset.user_num, 8) and model.item_semantic.shape == (dataset.item_num, 8)
    assert not model.user_semantic_mask[0] and not model.user_semantic[0].any()  # [PAD]
    assert model.user_semantic_mask[1:].all() and model.item_semantic_mask[1:].all()
    for side, field, tokens in (("user", "user_id", ["1", "196", "943", "405"]),
                                ("item", "item_id", ["1", "50", "1682", "242"])):
        file_tokens, matrix = read_embedding_file(folder / f"ml-100k.{side}emb", side)
        texts = {json.loads(line)["id"]: json.loads(line)["text"]
                 for line in (folder / f"ml-100k.generated.{side}profile.jsonl").read_text().splitlines()}
        table = getattr(model, f"{side}_semantic")
        for token in tokens:
            row = table[dataset.field2token_id[field][token]].numpy()
            np.testing.assert_array_equal(row, matrix[file_tokens.index(token)])
            np.testing.assert_allclose(row, FakeEncoder().encode([texts[token]])[0], atol=1e-7)
    half = torch.nn.Module()
    register_semantic_buffers(half, train.dataset, fp16=True, check_split=False)
    assert half.item_semantic.dtype == torch.float16


def test_split_check_catches_profiles_from_another_split(ml100k):
    folder, config, *_ = ml100k
    other = Config(model="BPR", dataset="ml-100k", config_dict={"data_path": str(folder.parent), "seed": 7,
                                                                  "state": "WARNING"})
    from recbole_darec.semantic.loading import apply_semantic_config
    apply_semantic_config(other)  # files exist; deliberately skip rebuilding profiles for seed 7
    _, (train, _, _) = _load_run(other)
    with pytest.raises(ValueError, match="different training split"):
        register_semantic_buffers(torch.nn.Module(), train.dataset)


# ---------------------------------------------------------------------------------------------- cache

def test_second_build_is_a_noop_and_a_changed_template_rebuilds(toy):
    enc = FakeEncoder()
    first = ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    assert all(r["rebuilt"] for r in first.values()) and enc.calls == 2
    before = _snapshot(toy)
    second = ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    assert not any(r["rebuilt"] for r in second.values()) and enc.calls == 2 and _snapshot(toy) == before
    third = ensure_semantic_embeddings(toy_config(toy, profile_item_template=["{title} ({genre})"]), encoder=enc)
    assert third["item"]["rebuilt"] and not third["user"]["rebuilt"] and enc.calls == 3
    assert (toy / "toy.itememb").stat().st_mtime_ns != before["toy.itememb"][0]
    assert (toy / "toy.useremb").read_bytes() == before["toy.useremb"][1]
    fourth = ensure_semantic_embeddings(toy_config(toy, profile_item_template=["{title} ({genre})"]),
                                        encoder=FakeEncoder(name="other"))
    assert all(r["rebuilt"] for r in fourth.values())  # another encoder: everything re-encoded
    assert not [p for p in toy.iterdir() if p.name.startswith(".")]  # no temp files left
    forced = ensure_semantic_embeddings(toy_config(toy), encoder=enc, force=True)
    assert all(r["rebuilt"] for r in forced.values())


def test_replaying_the_split_leaves_the_rng_untouched():
    from recbole_darec.semantic.split import preserved_rng

    def draws():
        return torch.rand(4), np.random.rand(2)

    torch.manual_seed(3)
    np.random.seed(3)
    expected = draws()
    torch.manual_seed(3)
    np.random.seed(3)
    with preserved_rng():  # what ensure_semantic_embeddings does around init_seed + dataset.build()
        torch.manual_seed(99)
        torch.randperm(10)
        np.random.rand(5)
    got = draws()
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


def test_benchmark_dataset_loads_end_to_end_with_normalize_all(toy):
    config = toy_config(toy)
    ensure_semantic_embeddings(config, encoder=FakeEncoder())
    assert config["normalize_all"] is False and config["normalize_field"] == ["timestamp", "price"]
    dataset, (train, _, _) = _load_run(config)
    model = torch.nn.Module()
    register_semantic_buffers(model, train.dataset)
    tokens, matrix = read_embedding_file(toy / "toy.itememb", "item")
    row = model.item_semantic[dataset.field2token_id["item_id"]["i3"]].numpy()
    np.testing.assert_array_equal(row, matrix[tokens.index("i3")])  # not min-max rescaled by normalize_all


# ---------------------------------------------------------------------------------------------- sources

def test_user_profile_files_and_provided_embeddings(toy):
    (toy / "toy.userprofile.jsonl").write_text('{"id": "u1", "text": "likes dramas"}\n'
                                               '{"id": "u3", "text": "likes horror", "reasoning": "x"}\n')
    (toy / "itm_prf.pkl").write_bytes(pickle.dumps({"i1": {"profile": "a drama", "reasoning": ""},
                                                    "i2": {"profile": "a comedy", "reasoning": ""}}))
    result = ensure_semantic_embeddings(toy_config(toy), encoder=FakeEncoder())
    tokens, matrix = read_embedding_file(toy / "toy.useremb", "user")
    assert tokens == ["u1", "u3"] and result["item"]["source"].endswith("itm_prf.pkl")
    np.testing.assert_allclose(matrix[1], FakeEncoder().encode(["likes horror"])[0], atol=1e-7)
    # A user-provided file (as the RLMRec converter writes) is used as is and never overwritten.
    write_embedding_file(toy / "toy.itememb", "item", ["i4"], np.full((1, 8), 0.5))
    again = ensure_semantic_embeddings(toy_config(toy), encoder=FakeEncoder())
    assert again["item"] == {"path": toy / "toy.itememb", "source": "provided", "rebuilt": False, "count": 1,
                             "dim": 8}
    assert read_embedding_file(toy / "toy.itememb", "item")[0] == ["i4"]


def test_dataset_without_any_source_says_what_to_provide(toy, capsys):
    for name in ("toy.item", "toy.user"):
        (toy / name).unlink()
    with pytest.raises(FileNotFoundError) as err:
        ensure_semantic_embeddings(toy_config(toy, load_col=None), encoder=FakeEncoder())
    msg = str(err.value)
    for needle in ("toy.useremb", "toy.itememb", "uid:token<TAB>user_emb:float_seq", "toy.userprofile.jsonl",
                   "python -m recbole_darec.data.convert_rlmrec SRC toy"):
        assert needle in msg
    assert run_cli(cli_main, "semantic", [f"--dataset=toy", f"--data_path={toy.parent}",
                                          "--benchmark_filename=['train','valid','test']", "--load_col=None"]) == 2
    assert "convert_rlmrec" in capsys.readouterr().err
    assert sorted(p.name for p in toy.iterdir()) == ["toy.test.inter", "toy.train.inter", "toy.valid.inter"]


def _emb_file(path, header, rows):
    path.write_text("\n".join([header] + rows) + "\n")


@pytest.mark.parametrize("rows, match", [
    (["u1\t0.1 0.2", "u2\t0.1 0.2 0.3"], r"line 3: .*has 3 values, expected 2"),
    (["u1\t0.1 0.2", "u2\t0.1 nan"], r"line 3: uid 'u2' contains NaN/Inf"),
    (["u1\tinf 0.2"], r"line 2: uid 'u1' contains NaN/Inf"),
    (["u1\t0.1 0.2", "u2\t0.1 0.2", "u1\t0.3 0.4"], r"line 4: duplicate uid 'u1' \(first seen on line 2\)"),
    (["u1\t0.1 0.2", "u9\t0.1 0.2"], r"line 3: unknown uid 'u9'"),
    ([], r"no embedding rows"),
])
def test_bad_embedding_files_name_file_and_line(toy, rows, match):
    _emb_file(toy / "toy.useremb", "uid:token\tuser_emb:float_seq", rows)
    before = _snapshot(toy)
    with pytest.raises(ValueError, match=match) as err:
        ensure_semantic_embeddings(toy_config(toy), encoder=FakeEncoder())
    assert "toy.useremb" in str(err.value) and _snapshot(toy) == before  # nothing written


def test_bad_profiles_and_dimension_across_files(toy):
    (toy / "toy.userprofile.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"toy.userprofile.jsonl: empty profile file"):
        ensure_semantic_embeddings(toy_config(toy), encoder=FakeEncoder())
    (toy / "toy.userprofile.jsonl").write_text('{"id": "u1", "text": "a"}\n{"id": "u1", "text": "b"}\n')
    with pytest.raises(ValueError, match=r"toy.userprofile.jsonl, line 2: duplicate user id 'u1'"):
        ensure_semantic_embeddings(toy_config(toy), encoder=FakeEncoder())
    (toy / "toy.userprofile.jsonl").write_text('{"id": "u1", "text": "a"}\n{"id": "zz", "text": "b"}\n')
    with pytest.raises(ValueError, match=r"toy.userprofile.jsonl, line 2: unknown user id 'zz'"):
        ensure_semantic_embeddings(toy_config(toy), encoder=FakeEncoder())
    (toy / "toy.userprofile.jsonl").unlink()
    _emb_file(toy / "toy.useremb", "uid:token\tuser_emb:float_seq", ["u1\t0.6 0.8"])  # dim 2 vs encoder's 8
    before = _snapshot(toy)
    with pytest.raises(ValueError, match=r"toy.useremb has dimension 2 but .*toy.itememb has 8"):
        ensure_semantic_embeddings(toy_config(toy), encoder=FakeEncoder())
    assert _snapshot(toy) == before


# ---------------------------------------------------------------------------------------------- matrix cache

class CountingEncoder(FakeEncoder):
    """FakeEncoder that also counts the texts it encoded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.texts = 0

    def encode(self, texts, show_progress=True, desc=""):
        self.texts += len(texts)
        return super().encode(texts, show_progress, desc)


def _built_files(folder, ds):
    """What a build leaves: the two embedding files, the generated profiles, the manifest minus file mtimes."""
    out = {name: (folder / name).read_bytes() for name in (f"{ds}.useremb", f"{ds}.itememb",
                                                           f"{ds}.generated.userprofile.jsonl")}
    manifest = json.loads((folder / f"{ds}.semantic.json").read_text())
    out["manifest"] = {side: {k: v for k, v in e.items() if k != "file_mtime_ns"}
                       for side, e in manifest.items() if side != "format"}
    return out


def test_switching_seeds_back_reuses_cached_user_embeddings(tmp_path, caplog):
    """ml-100k: user profiles follow the seed's training split; going back to a seed encodes nothing."""
    from recbole_darec.semantic import cache

    folder, enc = tmp_path / "ml-100k", CountingEncoder()
    folder.mkdir()
    for suffix in ("inter", "item", "user"):  # the source files only, not a build the repo copy may hold
        shutil.copyfile(DATASET_DIR / "ml-100k" / f"ml-100k.{suffix}", folder / f"ml-100k.{suffix}")

    def build(seed):
        config = Config(model="BPR", dataset="ml-100k", config_dict={
            "data_path": str(tmp_path), "seed": seed, "state": "WARNING", "semantic_show_progress": False})
        return ensure_semantic_embeddings(config, encoder=enc)

    caplog.set_level(logging.INFO)
    first = build(2020)
    assert all(r["rebuilt"] and not r.get("cached") for r in first.values())
    assert (enc.calls, enc.texts) == (2, 943 + 1664)  # 18 items repeat another item's text: encoded once
    files_a = _built_files(folder, "ml-100k")
    other = build(2021)  # another split changes every user's recent titles: nothing to reuse
    assert other["user"]["rebuilt"] and not other["item"]["rebuilt"] and "reused" not in other["user"]
    assert (enc.calls, enc.texts) == (3, 2 * 943 + 1664)
    assert _built_files(folder, "ml-100k")["ml-100k.useremb"] != files_a["ml-100k.useremb"]
    back = build(2020)
    assert back["user"]["rebuilt"] and back["user"]["cached"] and not back["item"]["rebuilt"]
    assert (enc.calls, enc.texts) == (3, 2 * 943 + 1664)  # seed 2020's users were encoded once
    assert _built_files(folder, "ml-100k") == files_a  # byte-identical files, same manifest (train fingerprint too)
    assert "semantic: reusing cached user embeddings of ml-100k" in caplog.text
    again = build(2020)
    assert not any(r["rebuilt"] for r in again.values()) and enc.calls == 3
    entries = sorted(p.name for p in (folder / "ml-100k.semantic-cache").iterdir())
    assert len(entries) == 3 and [e.split("-")[0] for e in entries] == ["item", "user", "user"]  # no temp files
    assert cache.cache_dir(folder, "ml-100k") == folder / "ml-100k.semantic-cache"


def _toy_train(toy, extra=()):
    rows = [("u1", "i1", 1), ("u1", "i2", 2), ("u2", "i2", 1), ("u3", "i3", 1)] + [(u, i, 9) for u, i in extra]
    _write(toy / "toy.train.inter", ["user_id:token", "item_id:token", "timestamp:float"], rows)


def _user_entry(toy, enc):
    from recbole_darec.semantic import cache

    digest = json.loads((toy / "toy.semantic.json").read_text())["user"]["text_hash"]
    return cache.cache_entry_path(toy, "toy", "user", enc.identity, digest)


def _corrupt(path, kind, other):
    with np.load(path, allow_pickle=False) as npz:
        meta, tokens, matrix = npz["meta"], npz["tokens"], npz["matrix"]

    def save(**arrays):
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    elif kind == "garbage":
        path.write_bytes(b"not an npz file")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickled":  # object arrays only load with pickle, which the cache never allows
        save(meta=meta, tokens=np.array(list(tokens), dtype=object), matrix=matrix)
    elif kind == "npy":  # a bare array, not an archive
        with open(path, "wb") as fh:
            np.save(fh, matrix)
    elif kind == "missing_key":
        save(meta=meta, tokens=tokens)
    elif kind == "short_matrix":
        save(meta=meta, tokens=tokens, matrix=matrix[:-1])
    elif kind == "wrong_dim":
        save(meta=meta, tokens=tokens, matrix=np.hstack([matrix, matrix]))
    elif kind == "other_tokens":
        save(meta=meta, tokens=tokens[::-1], matrix=matrix)
    elif kind == "float64":
        save(meta=meta, tokens=tokens, matrix=matrix.astype(np.float64))
    elif kind == "nan":
        matrix = matrix.copy()
        matrix[0, 0] = np.nan
        save(meta=meta, tokens=tokens, matrix=matrix)
    elif kind == "other_entry":  # a valid entry for other texts, under this entry's name
        shutil.copyfile(other, path)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "pickled", "npy", "missing_key", "short_matrix",
                                  "wrong_dim", "other_tokens", "float64", "nan", "other_entry"])
def test_corrupt_cache_entry_is_ignored_and_encoded_again(toy, caplog, kind):
    enc = CountingEncoder()
    ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    user_a, entry_a = (toy / "toy.useremb").read_bytes(), _user_entry(toy, enc)
    _toy_train(toy, [("u2", "i4")])
    ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    entry_b = _user_entry(toy, enc)
    assert enc.calls == 3 and entry_a.is_file() and entry_b.is_file() and entry_a != entry_b
    _corrupt(entry_a, kind, entry_b)
    _toy_train(toy)
    caplog.set_level(logging.INFO)
    back = ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    assert back["user"]["rebuilt"] and not back["user"].get("cached") and enc.calls == 4  # encoded again
    assert (toy / "toy.useremb").read_bytes() == user_a  # the bad entry's rows were not used
    assert f"ignoring cached user embeddings {entry_a}" in caplog.text
    # the entry was rewritten from the new encoding: both sides of the switch are cached again
    _toy_train(toy, [("u2", "i4")])
    assert ensure_semantic_embeddings(toy_config(toy), encoder=enc)["user"]["cached"]
    _toy_train(toy)
    assert ensure_semantic_embeddings(toy_config(toy), encoder=enc)["user"]["cached"] and enc.calls == 4
    assert (toy / "toy.useremb").read_bytes() == user_a
    assert not [p for p in (toy / "toy.semantic-cache").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kind", ["garbage", "nan", "wrong_dim"])
def test_rows_of_a_broken_entry_are_not_reused(toy, kind):
    from recbole_darec.semantic import cache

    enc = CountingEncoder()
    ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    entry_a = _user_entry(toy, enc)
    _toy_train(toy, [("u2", "i4")])
    ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    assert enc.texts == 3 + 5 + 1 and len(cache.reusable_rows(toy, "toy", "user", enc.identity, 8)) == 4
    _corrupt(entry_a, kind, None)
    assert len(cache.reusable_rows(toy, "toy", "user", enc.identity, 8)) == 3  # the other entry's rows only
    _toy_train(toy, [("u3", "i4")])  # u2 is back to a text only the broken entry held, u3 is new
    result = ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    assert result["user"]["reused"] == 1 and enc.texts == 3 + 5 + 1 + 2
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (toy / "toy.generated.userprofile.jsonl").read_text().splitlines()}
    tokens, matrix = read_embedding_file(toy / "toy.useremb", "user")
    np.testing.assert_allclose(matrix, FakeEncoder().encode([texts[t] for t in tokens]), atol=1e-7)


def test_cache_keeps_the_most_recently_used_entries_per_side(toy, monkeypatch):
    from recbole_darec.semantic import cache

    monkeypatch.setattr(cache, "CACHE_KEEP", 2)
    enc, entries = CountingEncoder(), {}
    variants = {0: [], 1: [("u2", "i4")], 2: [("u3", "i4")], 3: [("u2", "i5")], 4: [("u3", "i5")]}
    for v in (0, 1, 2, 3):
        _toy_train(toy, variants[v])
        ensure_semantic_embeddings(toy_config(toy), encoder=enc)
        entries[v] = _user_entry(toy, enc)
    assert len(set(entries.values())) == 4 and enc.calls == 5  # 4 user encodings + 1 item
    users = lambda: {p for p in (toy / "toy.semantic-cache").glob("user-*.npz")}  # noqa: E731
    assert users() == {entries[2], entries[3]}
    _toy_train(toy, variants[2])
    assert ensure_semantic_embeddings(toy_config(toy), encoder=enc)["user"]["cached"]  # a hit counts as a use
    _toy_train(toy, variants[4])
    ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    entries[4] = _user_entry(toy, enc)
    assert users() == {entries[2], entries[4]} and enc.calls == 6  # variant 3 was the least recently used
    assert len(list((toy / "toy.semantic-cache").glob("item-*.npz"))) == 1


class RecordingEncoder:
    """The real MiniLM behind a wrapper that records every text it is asked to encode."""

    def __init__(self, inner):
        self.inner, self.identity, self.dim, self.texts = inner, inner.identity, inner.dim, []

    def encode(self, texts, show_progress=True, desc=""):
        self.texts += list(texts)
        return self.inner.encode(texts, show_progress, desc)


def test_rebuild_encodes_only_the_changed_texts(toy, minilm, caplog):
    enc = RecordingEncoder(minilm)
    first = ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    assert len(enc.texts) == 3 + 5 and first["user"]["count"] == 3
    before = read_embedding_file(toy / "toy.useremb", "user")[1]
    _toy_train(toy, [("u2", "i4")])  # u2's training history changes, u1's and u3's do not
    caplog.set_level(logging.INFO)
    result = ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (toy / "toy.generated.userprofile.jsonl").read_text().splitlines()}
    assert enc.texts[8:] == [texts["u2"]] and "Delta" in texts["u2"]
    assert result["user"]["rebuilt"] and result["user"]["reused"] == 2 and not result["item"]["rebuilt"]
    assert "semantic: encoding 1 of 3 user profiles of toy" in caplog.text and "(2 reused" in caplog.text
    tokens, reused = read_embedding_file(toy / "toy.useremb", "user")
    assert tokens == ["u1", "u2", "u3"] and np.array_equal(reused[[0, 2]], before[[0, 2]])  # rows copied
    ensure_semantic_embeddings(toy_config(toy), encoder=enc, force=True)  # a full re-encode: the same matrix
    assert len(enc.texts) == 8 + 1 + 3 + 5
    assert np.array_equal(reused, read_embedding_file(toy / "toy.useremb", "user")[1])  # bit for bit


def test_half_precision_is_refused_on_cpu(toy):
    from recbole_darec.semantic.encoder import encoder_identity

    for dtype in ("float16", "bfloat16"):
        with pytest.raises(ValueError, match=f"^semantic_dtype={dtype} needs a CUDA semantic_device") as err:
            TextEncoder(device="cpu", dtype=dtype)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="^semantic_dtype='float64': expected one of float32, float16, bfloat16$"):
        TextEncoder(dtype="float64")
    config = toy_config(toy, semantic_dtype="bfloat16", semantic_device="cpu")  # a known key
    with pytest.raises(ValueError, match="^semantic_dtype=bfloat16 needs a CUDA semantic_device"):
        ensure_semantic_embeddings(config)
    assert not list(toy.glob("toy.*emb"))
    gpu_built = FakeEncoder()
    gpu_built.identity = encoder_identity(dtype="bfloat16")
    ensure_semantic_embeddings(toy_config(toy), encoder=gpu_built)
    with pytest.raises(ValueError, match="^semantic_dtype=bfloat16 needs a CUDA"):  # even with nothing to encode
        ensure_semantic_embeddings(config)
    # Part of the cache key, so half precision rows never pass for float32 ones; float32 adds nothing, so caches
    # written before the key existed stay valid.
    assert encoder_identity(dtype="bfloat16") == {**encoder_identity(), "dtype": "bfloat16"}
    assert "dtype" not in encoder_identity()


def test_files_built_before_the_cache_are_cached_when_replaced(toy):
    enc = CountingEncoder()
    ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    user_a = (toy / "toy.useremb").read_bytes()
    shutil.rmtree(toy / "toy.semantic-cache")  # as after an upgrade: files and manifest, no cache
    _toy_train(toy, [("u2", "i4")])
    ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    assert enc.calls == 3
    _toy_train(toy)
    back = ensure_semantic_embeddings(toy_config(toy), encoder=enc)
    assert back["user"]["cached"] and enc.calls == 3 and (toy / "toy.useremb").read_bytes() == user_a
    forced = ensure_semantic_embeddings(toy_config(toy), encoder=enc, force=True)  # force never reads the cache
    assert all(r["rebuilt"] and not r.get("cached") for r in forced.values()) and enc.calls == 5
