"""The user's own commands on real data: every backbone and zoo baseline through the CLI path, on ml-100k and on a
yelp subsample (the shipped RLMRec split); model/dataset lookup; determinism."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_darec import Config, get_model, run_recbole_darec

REPO = Path(__file__).resolve().parents[1]
MODELS = ["LightGCNBackbone", "SGLBackbone", "LightGCL", "BPR", "LightGCN", "SGL", "NCL"]


def finite_metrics(result):
    metrics = {f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20)}
    assert metrics <= set(result["test_result"]) and metrics <= set(result["best_valid_result"])
    return all(math.isfinite(v) and 0 <= v <= 1 for v in result["test_result"].values())


@pytest.fixture(scope="module")
def yelp_subsample(tmp_path_factory):
    """The first 1,500 users of the yelp split (all three files), as a dataset named yelp."""
    source = Path(Config(model="BPR", dataset="yelp", config_dict={"state": "WARNING"})["data_path"])
    root = tmp_path_factory.mktemp("data")
    (root / "yelp").mkdir()
    for split in ("train", "valid", "test"):
        lines = (source / f"yelp.{split}.inter").read_text().splitlines()
        kept = [line for line in lines[1:] if int(line.split("\t")[0]) < 1500]
        (root / "yelp" / f"yelp.{split}.inter").write_text("\n".join([lines[0], *kept]) + "\n")
    return root


@pytest.mark.parametrize("model", MODELS)
def test_model_trains_on_ml100k(model, quick_config):
    assert finite_metrics(run_recbole_darec(model, "ml-100k", config_dict=quick_config))


@pytest.mark.needs_data("rlmrec/yelp")
@pytest.mark.parametrize("model", MODELS)
def test_model_trains_on_yelp_subsample(model, quick_config, yelp_subsample):
    config = Config(model=model, dataset="yelp", config_dict={**quick_config, "data_path": str(yelp_subsample)})
    assert config["eval_protocol"] == "rlmrec" and config["benchmark_filename"] == ["train", "valid", "test"]
    result = run_recbole_darec(model, "yelp", config_dict={**quick_config, "data_path": str(yelp_subsample)})
    assert finite_metrics(result)


def test_same_seed_twice_gives_identical_metrics(quick_config):
    first = run_recbole_darec("LightGCNBackbone", "ml-100k", config_dict=quick_config)
    second = run_recbole_darec("LightGCNBackbone", "ml-100k", config_dict=quick_config)
    assert first == second


def test_cli_prints_the_valid_test_table(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "run_recbole_darec.py"), "--model=BPR", "--dataset=ml-100k", "--epochs=1",
         f"--checkpoint_dir={tmp_path}", "--train_batch_size=4096"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert "recall@20" in log and "valid" in log and "test" in log
    assert list(tmp_path.glob("BPR-*.pth"))  # the best checkpoint is saved


@pytest.mark.needs_data("rlmrec/yelp")
def test_yelp_means_the_rlmrec_split():
    config = Config(model="BPR", dataset="yelp", config_dict={"state": "WARNING"})
    header, *rows = (Path(config["data_path"]) / "yelp.train.inter").read_text().splitlines()
    assert header == "user_id:token\titem_id:token" and len(rows) == 166620
    # RLMRec protocol and hyperparameters, above BPR's own defaults (d = 64, batch 2048)
    assert config["embedding_size"] == 32 and config["train_batch_size"] == 4096
    assert config["eval_step"] == 3 and config["stopping_step"] == 5 and config["seed"] == 2023


def test_missing_dataset_never_falls_into_recboles_downloader(quick_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="steam.*convert_rlmrec"):
        Config(model="BPR", dataset="steam", config_dict={**quick_config, "data_path": str(tmp_path)})


def test_unknown_model_is_a_clear_error_listing_plugin_models():
    with pytest.raises(ValueError, match="unknown model 'NoSuchModel'.*DaRecLightGCN"):
        get_model("NoSuchModel")
    assert get_model("LightGCN").__module__ == "recbole.model.general_recommender.lightgcn"  # RecBole's own
    assert get_model("DaRecLightGCN").__name__ == "DaRecLightGCN"
