"""The two evaluation protocols on a hand-built split where they must disagree."""
import pytest
from recbole_darec import Config
from recbole_darec.single_run import build

from fixed_scores import FixedScoresModel

# Item preference shared by every user: i2 > i3 > i1 > i4 > i5 > i6.
ITEM_SCORES = {"i2": 6.0, "i3": 5.0, "i1": 4.0, "i4": 3.0, "i5": 2.0, "i6": 1.0}


class FixedScores(FixedScoresModel):
    """Scores items by ITEM_SCORES, independent of the user: makes the expected ranking hand-computable."""

    SCORES = ITEM_SCORES


def write_split(root):
    """u1: train i1, valid i2, test i3.  u2: train i4 and i5, valid i3, test i2."""
    folder = root / "proto"
    folder.mkdir()
    header = "user_id:token\titem_id:token\n"
    splits = {"train": ["u1\ti1", "u2\ti4", "u2\ti5", "u3\ti6"], "valid": ["u1\ti2", "u2\ti3"],
              "test": ["u1\ti3", "u2\ti2"]}
    for name, rows in splits.items():
        (folder / f"proto.{name}.inter").write_text(header + "\n".join(rows) + "\n")


@pytest.mark.parametrize("protocol, expected_test_recall1", [
    # recbole: u1 has i1 (train) and i2 (valid) masked -> top-1 is i3 = its test item (hit);
    #          u2 has i4, i5, i3 masked -> top-1 is i2 = its test item (hit).      recall@1 = (1 + 1) / 2
    ("recbole", 1.0),
    # rlmrec:  only train masked. u1: top-1 i2 (a valid item, miss); u2: top-1 i2 (hit). recall@1 = 0.5
    ("rlmrec", 0.5),
])
def test_protocols_give_hand_computed_recall(tmp_path, quick_config, protocol, expected_test_recall1):
    write_split(tmp_path)
    config = Config(model=FixedScores, dataset="proto", config_dict={
        **quick_config, "data_path": str(tmp_path), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]}, "eval_protocol": protocol,
        "metrics": ["Recall"], "topk": [1], "valid_metric": "Recall@1"})
    _, (train_data, valid_data, test_data), _, trainer = build(config)
    valid = trainer.evaluate(valid_data, load_best_model=False)
    test = trainer.evaluate(test_data, load_best_model=False)
    # Validation is the same under both protocols: u1 top-1 i2 (hit), u2 top-1 i2 -> miss (valid is i3).
    assert valid["recall@1"] == pytest.approx(0.5)
    assert test["recall@1"] == pytest.approx(expected_test_recall1)


def test_unknown_protocol_is_rejected(tmp_path, quick_config):
    write_split(tmp_path)
    config = Config(model=FixedScores, dataset="proto", config_dict={
        **quick_config, "data_path": str(tmp_path), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]}, "eval_protocol": "leaky"})
    with pytest.raises(ValueError, match="leaky"):
        build(config)
