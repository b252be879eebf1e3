"""Text controls (``semantic_text_control``): permuted / half / cut item text for no-harm checks, reproducible by
seed, user profiles from the controlled text of TRAINING items only, tables keyed by the control, ``none``
unchanged. A small generated stand-in dataset (not real data) and ml-100k's item side; the stand-in encoder of the
semantic tests' kind, since what is checked is which texts are encoded and cached, not their vectors."""
import hashlib
import json
from collections import Counter

import numpy as np
import pytest

from recbole_darec import Config
from recbole_darec.cli_errors import UserError, run_cli
from recbole_darec.semantic import ensure_semantic_embeddings, generate_profile_texts
from recbole_darec.semantic import cache
from recbole_darec.semantic.__main__ import main as semantic_main
from recbole_darec.data import sources
from recbole_darec.semantic.files import write_embedding_file

N_ITEMS, N_USERS = 40, 12
OFFICE = sources.shared_data_dir() / "amazon_office"
needs_office = pytest.mark.needs_data("amazon_office")


class FakeEncoder:
    """Stand-in encoder: a text's sha256 bytes as its row (same text, same row)."""

    identity, dim = {"encoder": "fake"}, 8

    def encode(self, texts, show_progress=True, desc=""):
        return np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], np.uint8) + 1.0
                         for t in texts]).astype(np.float32)


@pytest.fixture
def shop(tmp_path):
    """Generated stand-in: 12 users x 40 items, distinct three-word titles and a genre, fixed benchmark splits."""
    root = tmp_path / "shop"
    root.mkdir()
    rng = np.random.default_rng(7)
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    splits = {"train": [], "valid": [], "test": []}
    for u in range(N_USERS):
        items = rng.choice(N_ITEMS, size=7, replace=False)
        for t, i in enumerate(items):
            split = "test" if t == 6 else "valid" if t == 5 else "train"
            splits[split].append(f"u{u}\ti{i}\t{t}\n")
    for split, rows in splits.items():
        (root / f"shop.{split}.inter").write_text(header + "".join(rows))
    (root / "shop.item").write_text("item_id:token\ttitle:token_seq\tgenre:token\n" + "".join(
        f"i{i}\tWidget {i} Model{i * 3}\tgenre{i % 4}\n" for i in range(N_ITEMS)))
    return root


def shop_config(root, **extra):
    cfg = {"data_path": str(root.parent), "benchmark_filename": ["train", "valid", "test"], "state": "WARNING",
           "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title", "genre"]},
           "profile_item_template": "{title} - {genre}", "profile_user_template": "Bought: {history_title}.",
           "profile_max_history": 50, "semantic_show_progress": False, **extra}
    return Config(model="BPR", dataset=root.name, config_dict=cfg)


def texts_of(root, **extra):
    return generate_profile_texts(shop_config(root, **extra))[0]


def train_items_newest_first(root):
    rows = [line.split("\t") for line in (root / "shop.train.inter").read_text().splitlines()[1:]]
    out = {}
    for user, item, time in sorted(rows, key=lambda r: -float(r[2])):
        out.setdefault(user, []).append(item)
    return out


def test_none_is_todays_profiles_and_cache_keys(shop):
    default, none = texts_of(shop), texts_of(shop, semantic_text_control="none")
    assert none == default
    ensure_semantic_embeddings(shop_config(shop, semantic_text_control="none"), encoder=FakeEncoder())
    manifest = json.loads((shop / "shop.semantic.json").read_text())
    for side in ("user", "item"):  # the digest the tables were stored under before controls existed
        assert manifest[side]["text_hash"] == cache.text_hash(none[side])
        assert "text_control" not in manifest[side]


def test_permuted_moves_every_items_text_and_users_follow_their_training_items(shop):
    real, permuted = texts_of(shop), texts_of(shop, semantic_text_control="permuted")
    assert Counter(permuted["item"].values()) == Counter(real["item"].values())  # a permutation of the texts
    assert all(permuted["item"][i] != real["item"][i] for i in real["item"])  # nobody keeps their own
    title = {i: text.split(" - ")[0] for i, text in permuted["item"].items()}  # both fields travel together
    assert all(text in real["item"].values() for text in permuted["item"].values())
    for user, items in train_items_newest_first(shop).items():  # valid/test items never reach a profile
        assert permuted["user"][user] == f"Bought: {'; '.join(title[i] for i in items)}."
        assert permuted["user"][user] != real["user"][user]


def test_controls_are_reproducible_by_seed(shop):
    first = texts_of(shop, semantic_text_control="permuted")
    assert texts_of(shop, semantic_text_control="permuted") == first
    assert texts_of(shop, semantic_text_control="permuted", semantic_text_control_seed=0) == first  # the default
    other = texts_of(shop, semantic_text_control="permuted", semantic_text_control_seed=1)
    assert other["item"] != first["item"] and Counter(other["item"].values()) == Counter(first["item"].values())
    assert texts_of(shop, semantic_text_control="half", semantic_text_control_seed=3) == \
        texts_of(shop, semantic_text_control="half", semantic_text_control_seed=3)


def test_half_permutes_half_of_the_items(shop):
    real, half = texts_of(shop), texts_of(shop, semantic_text_control="half")
    changed = [i for i in real["item"] if half["item"][i] != real["item"][i]]
    assert len(changed) == N_ITEMS // 2
    assert sorted(half["item"][i] for i in changed) == sorted(real["item"][i] for i in changed)  # among themselves
    other = texts_of(shop, semantic_text_control="half", semantic_text_control_seed=1)
    assert {i for i in real["item"] if other["item"][i] != real["item"][i]} != set(changed)


def test_cut_keeps_the_first_field_or_its_first_words(shop):
    real, cut = texts_of(shop), texts_of(shop, semantic_text_control="cut")
    assert cut["item"] == {f"i{i}": f"Widget {i} Model{i * 3}" for i in range(N_ITEMS)}  # the title, no genre
    assert cut["user"] == real["user"]  # users list titles already
    words = texts_of(shop, semantic_text_control="cut", semantic_text_cut_words=2)
    assert words["item"]["i5"] == "Widget 5" and words["user"]["u0"].startswith("Bought: Widget ")
    assert all(len(words["item"][i]) < len(real["item"][i]) for i in real["item"])
    genre = texts_of(shop, semantic_text_control="cut", semantic_text_cut_field="genre")
    assert genre["item"]["i5"] == "genre1"
    assert "user" not in genre or not genre["user"]  # the user template names only the emptied title


def test_each_condition_has_its_own_tables_and_none_comes_back_from_the_cache(shop):
    encoder = FakeEncoder()
    ensure_semantic_embeddings(shop_config(shop), encoder=encoder)
    real_items = (shop / "shop.itememb").read_text()
    hashes = {"none": json.loads((shop / "shop.semantic.json").read_text())["item"]["text_hash"]}
    for control, seed in (("permuted", 0), ("permuted", 1), ("half", 0), ("cut", 0)):
        result = ensure_semantic_embeddings(
            shop_config(shop, semantic_text_control=control, semantic_text_control_seed=seed), encoder=encoder)
        manifest = json.loads((shop / "shop.semantic.json").read_text())
        assert manifest["item"]["text_control"]["control"] == control
        hashes[f"{control}{seed}"] = manifest["item"]["text_hash"]
        assert result["item"]["rebuilt"] and "cached" not in result["item"]
    assert len(set(hashes.values())) == len(hashes)
    back = ensure_semantic_embeddings(shop_config(shop), encoder=encoder)
    assert back["item"].get("cached") and (shop / "shop.itememb").read_text() == real_items


def test_permuted_item_rows_are_the_encodings_of_the_same_texts(shop):
    """A permuted item's row is the row its text had before: reused, not re-encoded."""
    encoder = FakeEncoder()
    ensure_semantic_embeddings(shop_config(shop), encoder=encoder)
    result = ensure_semantic_embeddings(shop_config(shop, semantic_text_control="permuted"), encoder=encoder)
    assert result["item"]["reused"] == N_ITEMS


def test_control_refuses_profiles_it_cannot_rebuild(shop):
    tokens = [f"i{i}" for i in range(N_ITEMS)]
    write_embedding_file(shop / "shop.itememb", "item", tokens, np.ones((N_ITEMS, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"semantic_text_control=permuted needs item profiles .*shop\.itememb"):
        ensure_semantic_embeddings(shop_config(shop, semantic_text_control="permuted"), encoder=FakeEncoder())


@pytest.mark.parametrize("key, value, message", [
    ("semantic_text_control", "shuffled", "semantic_text_control='shuffled': must be one of none, permuted"),
    ("semantic_text_control_seed", -1, "semantic_text_control_seed=-1: must be a whole number >= 0"),
    ("semantic_text_cut_words", 0, "semantic_text_cut_words=0: must be a whole number >= 1"),
])
def test_bad_values_are_refused_when_the_config_is_made(shop, key, value, message):
    with pytest.raises(UserError, match=message):
        shop_config(shop, **{key: value})


def test_unknown_cut_field_is_one_line_from_the_semantic_cli(shop, capsys):
    status = run_cli(semantic_main, "python -m recbole_darec.semantic",
                     ["--dataset=shop", f"--data_path={shop.parent}", "--benchmark_filename=['train','valid','test']",
                      "--semantic_text_control=cut", "--semantic_text_cut_field=price", "--state=WARNING"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert "semantic_text_cut_field='price': not a text field" in err[0] and "title, genre" in err[0]
    assert not (shop / "shop.itememb").exists()


def test_ml100k_items_under_each_control():
    def items(control):
        config = Config(model="BPR", dataset="ml-100k",
                        config_dict={"state": "WARNING", "semantic_text_control": control})
        return generate_profile_texts(config, ("item",))[0]["item"]

    real = items("none")
    permuted, half, cut = items("permuted"), items("half"), items("cut")
    assert Counter(permuted.values()) == Counter(real.values())
    assert sum(permuted[i] != real[i] for i in real) >= 0.99 * len(real)
    assert abs(sum(half[i] != real[i] for i in real) - len(real) / 2) <= 0.01 * len(real)
    assert real["1"] == "Toy Story (1995). Genres: Animation, Children's, Comedy." and cut["1"] == "Toy Story"
    assert all(len(cut[i]) < len(real[i]) for i in real)


@needs_office
def test_office_cut_keeps_three_words_of_the_text():
    config = Config(model="BPR", dataset="amazon-office",
                    config_dict={"state": "WARNING", "semantic_text_control": "cut"})
    cut = generate_profile_texts(config, ("item",))[0]["item"]
    index = dict(line.split("\t") for line in (OFFICE / "Office.item2index").read_text().splitlines())
    assert cut[index["B00000JBLU"]] == "Texas Instruments TI-1795"  # no title field: the first 3 words
    assert len(cut) == 2420 and all(len(text.split()) <= 3 for text in cut.values())
