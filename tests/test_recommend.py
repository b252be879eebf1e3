"""recommend: top-k per user from a real 1-epoch checkpoint, seen items masked, new items placed through the model's
text -> CF map (DaRec: PCA, centring, llm_shared, inverse isometry, warm scale), and every bad input one line."""
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import recbole_darec.recommend as rec
from recbole_darec import run_recbole_darec
from recbole_darec.cli_errors import run_cli

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "dataset" / "ml-100k"
PROG = "python -m recbole_darec.recommend"
SOURCES = ("1", "50", "100", "181")  # Toy Story, Star Wars, Fargo, Return of the Jedi (file order), copied
USERS = ("196", "186", "22")


def train_once(tmp_path_factory, model):
    """A 1-epoch checkpoint of ``model`` on ml-100k (the quick_config settings), trained in its own folder."""
    folder = tmp_path_factory.mktemp(model)
    config = {"epochs": 1, "state": "WARNING", "show_progress": False, "checkpoint_dir": str(folder / "saved"),
              "train_batch_size": 4096, "eval_batch_size": 409600, "embedding_size": 32}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # RecBole's log/ goes there
        run_recbole_darec(model, "ml-100k", config_dict=config)
    (path,) = [p for p in (folder / "saved").glob(f"{model}-*.pth") if not p.name.endswith(".last.pth")]
    return path


@pytest.fixture(scope="module")
def darec(tmp_path_factory):
    path = train_once(tmp_path_factory, "DaRecLightGCN")
    return path, rec.load_recommender(path)


@pytest.fixture(scope="module")
def lightgcn(tmp_path_factory):
    return train_once(tmp_path_factory, "LightGCNBackbone")


@pytest.fixture(scope="module")
def new_items(tmp_path_factory):
    """A .item file whose items copy the rows of ml-100k items ``SOURCES`` under new ids ``new-<id>``."""
    items = pd.read_csv(DATA / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    header = list(items.columns)
    rows = items[items[header[0]].isin(SOURCES)].copy()
    rows[header[0]] = "new-" + rows[header[0]]
    path = tmp_path_factory.mktemp("new") / "new.item"
    rows.to_csv(path, sep="\t", index=False)
    return path


def seen_items(user):
    """Every item ``user`` rated in ml-100k.inter (read directly, not through RecBole)."""
    inter = pd.read_csv(DATA / "ml-100k.inter", sep="\t", dtype=str)
    return set(inter.loc[inter["user_id:token"] == user, "item_id:token"])


def test_top_k_is_k_rows_per_user_in_descending_model_score(darec):
    _, recommender = darec
    rows = recommender.recommend(USERS, k=7)
    assert [r["user"] for r in rows] == [u for u in USERS for _ in range(7)]
    model, dataset = recommender.model, recommender.dataset
    user_all, item_all = model._eval_embeddings()
    for user in USERS:
        mine = [r for r in rows if r["user"] == user]
        assert [r["rank"] for r in mine] == list(range(1, 8)) and not any(r["new"] for r in mine)
        scores = [r["score"] for r in mine]
        assert scores == sorted(scores, reverse=True)
        u, items = dataset.token2id("user_id", user), [dataset.token2id("item_id", r["item"]) for r in mine]
        torch.testing.assert_close(torch.tensor(scores), (item_all[items] @ user_all[u]).float())
    assert rows[0]["name"] and rows[0]["name"] == names()[rows[0]["item"]]  # the template's first field: the title


def names():
    items = pd.read_csv(DATA / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    return dict(zip(items["item_id:token"], items["movie_title:token_seq"]))


def test_masking_leaves_out_every_item_of_train_valid_and_test_unless_asked(darec):
    _, recommender = darec
    everything = recommender.dataset.item_num + 10
    for user in ("196", "405"):
        seen = seen_items(user)
        masked = recommender.recommend([user], k=everything)
        assert not {r["item"] for r in masked} & seen
        assert len(masked) == recommender.dataset.item_num - 1 - len(seen)  # every other item, [PAD] never
        shown = recommender.recommend([user], k=everything, mask_seen=False)
        assert seen <= {r["item"] for r in shown} and len(shown) == recommender.dataset.item_num - 1


def test_darec_cold_map_is_pca_centre_llm_shared_inverse_isometry_and_warm_scale(darec):
    """Two items' encoder rows (from the dataset's .itememb), by hand: the model's PCA reproduces their table rows,
    then centre by the training items' mean row, llm_shared, Q^T (Q the square orthonormal CF shared weight),
    scaled to the median norm of the warm items' scoring rows."""
    from recbole_darec.semantic.files import read_embedding_file

    _, recommender = darec
    model, dataset = recommender.model, recommender.dataset
    tokens, matrix = read_embedding_file(DATA / "ml-100k.itememb", "item")
    picked = [tokens.index(t) for t in ("1", "50")]
    ids = torch.tensor([dataset.token2id("item_id", t) for t in ("1", "50")])
    encoded = torch.as_tensor(matrix[picked])

    assert model.semantic_encoder_dim == 384 and model.semantic_dim == 256  # DaRec's default PCA
    torch.testing.assert_close(model.semantic_rows_of(encoded), model.item_semantic[ids], rtol=0, atol=1e-5)
    trained = torch.unique(model.inter_items)  # the graph's training items (not the mask the model keeps)
    centre = model.item_semantic[trained[model.item_semantic_mask[trained]]].mean(0)
    q = model.head.cf_shared[0].weight
    assert q.shape == (32, 32) and not q.requires_grad
    torch.testing.assert_close(q @ q.t(), torch.eye(32), rtol=0, atol=1e-5)
    with torch.no_grad():
        shared = model.head.llm_shared(model.item_semantic[ids] - centre)
        back = (q.t() @ shared.t()).t()
        _, item_all = model.forward()
    scale = item_all[trained].norm(dim=1).median()
    expected = back / back.norm(dim=1, keepdim=True) * scale
    got = model.cold_item_embeddings(encoded)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got.norm(dim=1), scale.expand(2), rtol=1e-5, atol=0)


def test_new_items_with_an_items_text_map_next_to_that_items_text(darec, new_items):
    _, recommender = darec
    model, dataset = recommender.model, recommender.dataset
    tokens, _, cold = recommender.encode_new_items(new_items)
    assert tokens == [f"new-{t}" for t in SOURCES] and cold.shape == (len(SOURCES), 32)
    with torch.no_grad():
        mapped = F.normalize(model._cold_map(model.item_semantic[1:].float()), dim=1)  # every item's text, mapped
    cosine = F.normalize(cold, dim=1) @ mapped.t()
    for row, source in enumerate(SOURCES):
        nearest = int(cosine[row].argmax()) + 1  # mapped excludes [PAD]
        assert dataset.id2token("item_id", nearest) == source, (source, float(cosine[row].max()))
        assert float(cosine[row, dataset.token2id("item_id", source) - 1]) > 0.999
    # ranked with the known items: every new item once, flagged, named by its title, on the model's scale
    rows = recommender.recommend(["196"], k=dataset.item_num + 10, new_items=new_items, mask_seen=False)
    new_rows = [r for r in rows if r["new"]]
    assert sorted(r["item"] for r in new_rows) == sorted(tokens)
    assert {r["item"]: r["name"] for r in new_rows} == {f"new-{t}": names()[t] for t in SOURCES}
    assert len(rows) == dataset.item_num - 1 + len(SOURCES)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_rlmrec_con_maps_through_its_mlp_and_rlmrec_gen_refuses(quick_config):
    from recbole_darec import Config
    from recbole_darec.cli_errors import UserError
    from recbole_darec.single_run import build

    con = build(Config(model="RLMRecConLightGCN", dataset="ml-100k", config_dict=quick_config)).model.eval()
    rows = con.item_semantic[1:4] * 1.5  # any encoder-width rows (RLMRec keeps the full 384)
    _, item_all = con._eval_embeddings()
    scale = item_all[con.train_item_mask].norm(dim=1).median()
    with torch.no_grad():
        expected = F.normalize(con.head.mlp(rows), dim=1) * scale
    torch.testing.assert_close(con.cold_item_embeddings(rows), expected)
    gen = build(Config(model="RLMRecGenLightGCN", dataset="ml-100k", config_dict=quick_config)).model.eval()
    with pytest.raises(UserError, match="^RLMRecGenLightGCN cannot score items it was not trained on: it has no map "
                                        "from text to its CF space$"):
        gen.cold_item_embeddings(rows)


def test_plain_backbone_recommends_through_the_function(lightgcn):
    rows = rec.recommend(lightgcn, ["196", 186], k=4)
    assert rec.recommend(lightgcn, "196,186", k=4) == rows
    assert [(r["user"], r["rank"]) for r in rows] == [(u, i) for u in ("196", "186") for i in range(1, 5)]
    assert not {r["item"] for r in rows if r["user"] == "196"} & seen_items("196")


def test_cli_end_to_end_prints_and_writes_the_function_s_rows(darec, new_items, tmp_path):
    path, recommender = darec
    out = tmp_path / "top.csv"
    run = subprocess.run([sys.executable, "-m", "recbole_darec.recommend", f"--checkpoint={path}", "--users=196,186",
                          "--k=5", f"--new-items={new_items}", f"--out={out}"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    first = run.stdout.splitlines()[0]
    assert first.startswith(f"DaRecLightGCN on ml-100k, checkpoint {path}: top 5 per user")
    assert "user 196" in run.stdout and "user 186" in run.stdout
    with open(out, newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    expected = recommender.recommend(["196", "186"], k=5, new_items=new_items)
    assert len(written) == 10 and list(written[0]) == list(rec.ROW_FIELDS)
    assert [(w["user"], int(w["rank"]), w["item"], w["name"], w["new"]) for w in written] == \
        [(e["user"], e["rank"], e["item"], e["name"], str(e["new"])) for e in expected]
    assert [float(w["score"]) for w in written] == pytest.approx([e["score"] for e in expected], rel=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["top.csv"]  # no temp file left


@pytest.fixture
def bad_files(tmp_path):
    """New-items files: one reusing dataset ids, one without the template's fields."""
    taken = tmp_path / "taken.item"
    taken.write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                     "new-a\tA Film\t2030\tDrama\n1\tToy Story\t1995\tComedy\n50\tStar Wars\t1977\tAction\n")
    fields = tmp_path / "fields.item"
    fields.write_text("item_id:token\tmovie_title:token_seq\nnew-a\tA Film\n")
    return tmp_path


@pytest.mark.parametrize("flags, message", [
    (["--users=196,nobody,x2"], r"--users: unknown user id\(s\) nobody, x2 \(2 of 3\) in dataset ml-100k"),
    (["--users=" + ",".join(f"u{i}" for i in range(7))], r"unknown user id\(s\) u0, u1, u2, u3, u4 and 2 more"),
    (["--users=196", "--new-items={files}/taken.item"],
     r"taken.item: item id\(s\) 1, 50 already exist in dataset ml-100k \(2 of 3\)"),
    (["--users=196", "--new-items={files}/fields.item"],
     r"fields.item lacks the field\(s\) release_year, class that ml-100k's profile_item_template needs"),
    (["--users=196", "--k=0"], r"--k=0: must be a whole number >= 1"),
    (["--users=196", "--checkpoint={files}/missing.pth"], r"checkpoint .*missing.pth does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(darec, bad_files, monkeypatch, capsys, flags, message):
    path, recommender = darec
    monkeypatch.setattr(rec, "load_recommender", lambda _: recommender)  # the module's checkpoint, loaded once
    out = bad_files / "out" / "top.csv"
    out.parent.mkdir()
    argv = [f"--checkpoint={path}", *(f.format(files=bad_files) for f in flags), f"--out={out}"]
    status = run_cli(rec.main, PROG, argv)
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith(f"{PROG}: error: "), err
    assert re.search(message, err), err
    assert not list(out.parent.iterdir())


def test_new_items_with_a_checkpoint_without_llm_side_is_refused_before_loading(lightgcn, new_items, tmp_path,
                                                                                 monkeypatch, capsys):
    monkeypatch.setattr(rec, "load_recommender", lambda _: pytest.fail("loaded the checkpoint"))
    out = tmp_path / "top.csv"
    status = run_cli(rec.main, PROG, [f"--checkpoint={lightgcn}", "--users=196", f"--new-items={new_items}",
                                      f"--out={out}"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err == (f"{PROG}: error: LightGCNBackbone cannot score items it was not trained on: it "
                                   "has no map from text to its CF space" + rec.NO_LLM_SIDE)
    assert not out.exists()


@pytest.mark.parametrize("overrides", [{"darec_d_proj": 16}, {"darec_cf_projector": "linear"},
                                       {"darec_cf_projector": "mlp"}])
def test_darec_inverts_a_narrower_isometry_and_a_linear_projector_and_refuses_an_mlp(quick_config, overrides):
    """The CF row found for a new item is one the CF shared projector sends exactly onto the item's LLM shared row
    (pseudo-inverse of a 32 -> 16 isometry, least squares of a trained linear map); a trained MLP has no inverse."""
    from recbole_darec import Config
    from recbole_darec.cli_errors import UserError
    from recbole_darec.single_run import build

    model = build(Config(model="DaRecLightGCN", dataset="ml-100k", config_dict={**quick_config, **overrides})).model
    rows = model.item_semantic[1:6].float()
    if overrides.get("darec_cf_projector") == "mlp":
        with pytest.raises(UserError, match="trained MLP .darec_cf_projector=mlp., which has no inverse$"):
            model._cold_map(rows)
        return
    with torch.no_grad():
        shared = model.head.llm_shared(rows - model.cold_llm_centre())
        torch.testing.assert_close(model.head.cf_shared(model._cold_map(rows)), shared, rtol=1e-4, atol=1e-5)
