"""Side-by-side comparisons (run_compare.py): tables equal the records, resume, significance, validation, t-SNE.

Real runs on ml-100k, 1 epoch: BPR and LightGCNBackbone x 2 seeds for the tables (interactions only, so they are
quick), one DaRecLightGCN and one LightGCNBackbone run for the t-SNE figures (alone and the pair) from checkpoints.
"""
import csv
import hashlib
import json
import math
import statistics
import struct
from pathlib import Path

import numpy as np
import pytest

from recbole_darec import Config
from recbole_darec.report import CompareOptions, records, run_comparison, runner, summarize, to_markdown
from recbole_darec.report.cli import main, options_from_args
from recbole_darec.report.stats import paired_pvalue
from recbole_darec.report.tsne import tsne_plot
from recbole_darec.single_run import build

QUICK = {"epochs": 1, "train_batch_size": 4096, "eval_batch_size": 409600, "embedding_size": 32}
FAST = {**QUICK, "load_col": {"inter": ["user_id", "item_id"]}}  # no text columns: BPR/LightGCN don't use them
METRICS = ["recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"]


def png_size(path):
    """(width, height) from a PNG header; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    opts = CompareOptions(dataset="ml-100k", models=["BPR", "LightGCNBackbone"], seeds=[2020, 2021], out=str(out),
                          overrides=FAST, tsne=False)
    result = run_comparison(opts, log=lambda *a: None)
    return opts, result


def test_comparison_writes_tables_pictures_and_records(comparison):
    opts, result = comparison
    out = opts.out_dir
    assert sorted(result["ran"]) == [("BPR", 2020), ("BPR", 2021), ("LightGCNBackbone", 2020),
                                     ("LightGCNBackbone", 2021)] and not result["failed"]
    for name in ("table.md", "table.csv", "table.tex", "runs.jsonl"):
        assert (out / name).stat().st_size > 100, name
    for stem in ("bars", "curves"):
        width, height = png_size(out / f"{stem}.png")
        assert width > 300 and height > 200 and (out / f"{stem}.png").stat().st_size > 10_000
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    tex = (out / "table.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"\textbf{" in tex
    runs = records.read_records(out / "runs.jsonl")
    assert len(runs) == 4
    for run in runs:
        assert set(METRICS) <= set(run["test"]) and run["epochs_to_best"] == 1 and run["train_time_s"] > 0
        assert len(run["curve"]) == 1 and run["curve"][0]["score"] == run["best_valid_score"]
        assert run["checkpoint"].endswith(".pth") and run["machine"]["cpus"] and run["versions"]["recbole"]
        # paths relative to the comparison's folder: records that travel name no folder of the machine that ran them
        assert not Path(run["checkpoint"]).is_absolute() and not Path(run["log_file"]).is_absolute()
        assert records.resolve_path(run["checkpoint"], out).is_file()
        # each run keeps its own full log (the console stays quiet): every loss term per epoch and the test result
        log_text = records.resolve_path(run["log_file"], out).read_text()
        assert "epoch 0 training" in log_text and "test result: {" in log_text
        assert run["model"] == "BPR" or "bpr:" in log_text  # the plugin's models log each term by name
        assert f"-seed{run['seed']}" in log_text and "embedding_size" in log_text  # its own run, its config
    # Different seeds are different runs (init, and on ml-100k the random split), not copies.
    bpr = {r["seed"]: r["test"]["ndcg@5"] for r in runs if r["model"] == "BPR"}
    assert bpr[2020] != bpr[2021]


def test_table_numbers_equal_the_records(comparison):
    opts, _ = comparison
    runs = records.read_records(opts.out_dir / "runs.jsonl")
    with (opts.out_dir / "table.csv").open() as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    markdown = (opts.out_dir / "table.md").read_text()
    assert set(rows) == {"BPR", "LightGCNBackbone"}
    for model, row in rows.items():
        mine = [r for r in runs if r["model"] == model]
        assert row["seeds"] == "2" and row["kind"] == "baseline"
        for column in METRICS + ["train_time_s", "epochs_to_best"]:
            values = [r["test"][column] if column in METRICS else r[column] for r in mine]
            mean, std = statistics.mean(values), statistics.stdev(values)
            assert float(row[f"{column}_mean"]) == pytest.approx(mean, abs=1e-12)
            assert float(row[f"{column}_std"]) == pytest.approx(std, abs=1e-12)
            if column in METRICS:
                assert f"{mean:.4f}" in markdown and f"± {std:.4f}" in markdown
    best = max(rows, key=lambda m: float(rows[m]["recall@20_mean"]))
    assert f"**{float(rows[best]['recall@20_mean']):.4f}**" in markdown


def test_resume_reruns_only_the_missing_run(comparison, monkeypatch):
    opts, _ = comparison
    runs_file = opts.out_dir / "runs.jsonl"
    lines = runs_file.read_text().splitlines()
    kept = [line for line in lines if not (json.loads(line)["model"] == "BPR" and json.loads(line)["seed"] == 2021)]
    assert len(kept) == 3
    runs_file.write_text("\n".join(kept) + "\n")
    calls = []
    real = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda spec: calls.append((spec["model"], spec["seed"])) or real(spec))
    result = run_comparison(opts, log=lambda *a: None)
    assert calls == [("BPR", 2021)] and result["ran"] == [("BPR", 2021)]
    after = runs_file.read_text().splitlines()
    assert after[:3] == kept and len(after) == 4  # earlier records untouched, the missing one appended
    assert run_comparison(opts, log=lambda *a: None)["ran"] == [] and len(calls) == 1  # complete: nothing to do


def constructed(model, values):
    return [{"model": model, "seed": 2020 + i, "dataset": "toy", "train_time_s": 1.0, "epochs_to_best": 3,
             "valid_metric": "recall@20",
             "test": {"recall@20": v, "ndcg@20": v / 2}} for i, v in enumerate(values)]


def test_significance_is_marked_only_for_consistent_differences():
    base = [0.100, 0.110, 0.105, 0.098, 0.102]
    better = constructed("DaRecLightGCN", [v + d for v, d in zip(base, [0.010, 0.012, 0.009, 0.011, 0.013])])
    summary = summarize(constructed("LightGCN", base) + better)
    assert summary.pvalue["DaRecLightGCN"]["recall@20"] < 0.05
    assert summary.marker("DaRecLightGCN", "recall@20") == "†"
    assert summary.improvement["DaRecLightGCN"]["recall@20"] == pytest.approx(100 * 0.011 / np.mean(base))
    assert "†" in to_markdown(summary).split("\n")[3]  # the DaRec row
    same = summarize(constructed("LightGCN", base) + constructed("DaRecLightGCN", base))
    assert math.isnan(same.pvalue["DaRecLightGCN"]["recall@20"]) and same.marker("DaRecLightGCN", "recall@20") == ""
    assert "†" not in to_markdown(same).split("\n\n")[0] and "‡" not in to_markdown(same).split("\n\n")[0]
    worse = summarize(constructed("LightGCN", base) + constructed("RLMRecConLightGCN", [v - 0.01 for v in base[:4]]
                                                                   + [base[4] - 0.02]))
    assert worse.marker("RLMRecConLightGCN", "recall@20") == "‡"
    noisy = summarize(constructed("LightGCN", base) + constructed("DaRecSGL", [0.12, 0.09, 0.11, 0.09, 0.11]))
    assert noisy.pvalue["DaRecSGL"]["recall@20"] >= 0.05 and noisy.marker("DaRecSGL", "recall@20") == ""
    assert paired_pvalue(list(range(8)), [x - 1 - 0.1 * x for x in range(8)], test="wilcoxon") < 0.05


@pytest.mark.parametrize("args, listed", [
    (["--dataset=ml-100k", "--models=BPR,NoSuchModel"], ["NoSuchModel", "LightGCN", "DaRecLightGCN", "SGL"]),
    (["--dataset=no-such-data", "--models=BPR"], ["no-such-data", "ml-100k", "yelp"]),
])
def test_unknown_model_or_dataset_fails_before_any_run(tmp_path, monkeypatch, capsys, args, listed):
    monkeypatch.setattr(runner, "run_one", lambda spec: pytest.fail("a run started"))
    assert main(args + [f"--out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in listed), err
    assert not (tmp_path / "out").exists()


def test_cli_flags_and_overrides():
    opts = options_from_args(["--dataset=ml-100k", "--models=BPR,LightGCN,BPR", "--seeds=2", "--epochs=5",
                              "--learning_rate=1e-3", "--gpu_id=", "--eval_args={'mode': 'full'}", "--parallel", "2"])
    assert opts.models == ["BPR", "LightGCN"] and opts.seeds == [2020, 2021] and opts.parallel == 2
    assert opts.overrides == {"epochs": 5, "learning_rate": 1e-3, "gpu_id": "", "eval_args": {"mode": "full"}}
    assert options_from_args(["--dataset=x", "--seed-list", "7,9"]).seeds == [7, 9]


def test_tsne_plot_separates_clear_clusters(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    labels = np.repeat(np.arange(3), 60)
    (png, pdf), info = tsne_plot(centres[labels] + rng.normal(size=(180, 16)), labels, tmp_path / "t", "toy")
    assert info["clusters"] == {0: 60, 1: 60, 2: 60} and info["silhouette_cosine"] > 0.5
    assert png_size(png)[0] > 300 and pdf.read_bytes()[:5] == b"%PDF-"


def test_figure_names_keep_dots_of_row_labels(tmp_path):
    """Variant labels such as DaRec-lam0.3 name figures; two labels differing after a dot must not collide."""
    from recbole_darec.report.plots import figure_paths

    assert [p.name for p in figure_paths(tmp_path / "tsne_DaRec-lam0.3")] == ["tsne_DaRec-lam0.3.png",
                                                                               "tsne_DaRec-lam0.3.pdf"]
    labels = np.repeat(np.arange(2), 20)
    points = np.random.default_rng(0).normal(size=(40, 4)) + labels[:, None] * 5
    for stem in ("tsne_DaRec-lam0.3", "tsne_DaRec-lam0.5"):
        tsne_plot(points, labels, tmp_path / stem, stem)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tsne_DaRec-lam0.3.pdf", "tsne_DaRec-lam0.3.png", "tsne_DaRec-lam0.5.pdf", "tsne_DaRec-lam0.5.png"]


def test_backbone_users_from_a_trained_checkpoint(comparison):
    """The backbone panel of the t-SNE pair: final user embeddings of a saved backbone, [PAD] left out."""
    from recbole_darec.report.tsne import backbone_users_from_checkpoint

    opts, _ = comparison
    run = next(r for r in records.read_records(opts.out_dir / "runs.jsonl") if r["model"] == "LightGCNBackbone")
    name, users = backbone_users_from_checkpoint(str(records.resolve_path(run["checkpoint"], opts.out_dir)))
    assert name == "LightGCNBackbone" and users.shape == (943, QUICK["embedding_size"]) and np.isfinite(users).all()


def test_tsne_from_a_trained_darec_checkpoint(tmp_path):
    # The first DaRec run on a fresh ml-100k split encodes user profiles with MiniLM (about a minute on 2 cores).
    # A small alignment sample keeps the 1-epoch run short on CPU (the head's cost is O(N̂²) per step).
    # With its backbone's row (1 epoch, seconds) the report also draws the DaRec / backbone t-SNE pair.
    opts = CompareOptions(dataset="ml-100k", models=["LightGCNBackbone", "DaRecLightGCN"], seeds=[2020],
                          out=str(tmp_path / "o"), overrides={**QUICK, "darec_sample_size": 512})
    logged = []
    result = run_comparison(opts, log=logged.append)
    png = opts.out_dir / "tsne_DaRecLightGCN.png"
    assert result["ran"] == [("LightGCNBackbone", 2020), ("DaRecLightGCN", 2020)]
    assert result["paths"]["tsne_DaRecLightGCN"][0] == png
    # the aligned run's record names the LLM tables it trained with (a content hash); the backbone's has none
    backbone, darec = records.read_records(opts.out_dir / "runs.jsonl")
    assert "llm_tables" not in backbone and "text_trust" not in backbone
    # and the share of λ its text earned, with the measurement behind it (ml-100k's titles: full trust)
    assert darec["text_trust"] == 1.0 and darec["text_agreement"]["auc"] > darec["text_agreement"]["null_mean"]
    config = Config(model="DaRecLightGCN", dataset="ml-100k", config_dict={**QUICK, "seed": 2020,
                                                                           "semantic_pca_dim": None})  # raw tables
    _, _, model, _ = build(config)
    assert darec["llm_tables"] == {
        side: hashlib.sha256(getattr(model, f"{side}_semantic").numpy().tobytes()).hexdigest()
        for side in ("user", "item")}
    assert darec["llm_tables"]["user"] != darec["llm_tables"]["item"]
    pair_png, pair_pdf = result["paths"]["tsne_pair_DaRecLightGCN"]
    assert png_size(pair_png)[0] > 1.5 * png_size(png)[0] and pair_pdf.read_bytes()[:5] == b"%PDF-"  # two panels
    pair_log = next(line for line in logged if line.startswith("t-SNE pair DaRecLightGCN / LightGCNBackbone"))
    assert "'users': 943" in pair_log and "'k': 4" in pair_log  # every user, the head's K (default 4)
    assert result["paths"]["diffs"][0].is_file()  # one seed: points only
    width, height = png_size(png)
    assert width > 300 and height > 300 and png.stat().st_size > 20_000
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3].reshape(-1, 3)
    assert len(np.unique(pixels.round(1), axis=0)) >= 5  # several cluster colours, not a blank canvas


def test_a_failed_run_is_logged_and_retried_later(tmp_path, monkeypatch):
    def fake(spec):
        if spec["seed"] == 2021:
            raise RuntimeError("out of memory (simulated)")
        return constructed(spec["model"], [0.1])[0] | {"dataset": "ml-100k", "seed": spec["seed"], "curve": []}

    monkeypatch.setattr(runner, "run_one", fake)
    out = tmp_path / "o"
    assert main(["--dataset=ml-100k", "--models=BPR", "--seeds=2", f"--out={out}", "--no-tsne"]) == 1
    assert [r["seed"] for r in records.read_records(out / "runs.jsonl")] == [2020]
    failure = records.read_records(out / "failures.jsonl")[0]
    assert failure["seed"] == 2021 and "out of memory" in failure["error"] and "Traceback" in failure["traceback"]
    monkeypatch.setattr(runner, "run_one", lambda spec: fake({**spec, "seed": 2020}) | {"seed": spec["seed"]})
    assert main(["--dataset=ml-100k", "--models=BPR", "--seeds=2", f"--out={out}", "--no-tsne"]) == 0
    assert sorted(r["seed"] for r in records.read_records(out / "runs.jsonl")) == [2020, 2021]
    # Other settings in the same folder would mix incomparable runs: refused before any run.
    assert main(["--dataset=ml-100k", "--models=BPR", f"--out={out}", "--epochs=7"]) == 2
    # --report-only rebuilds the report from the records alone.
    (out / "table.md").unlink()
    monkeypatch.setattr(runner, "run_one", lambda spec: pytest.fail("a run started"))
    assert main(["--dataset=ml-100k", f"--out={out}", "--report-only", "--no-tsne"]) == 0
    assert "| BPR | 2 |" in (out / "table.md").read_text()


def test_model_kind_follows_the_class_not_the_name(monkeypatch):
    names = ("DaRec", "DaRecSGL", "RLMRecGenSGL", "LightGCNBackbone", "LightGCL", "BPR", "NoSuchModel")
    assert [records.model_kind(n) for n in names] == ["plugin"] * 3 + ["baseline"] * 4
    from recbole_darec.model.composed.semantic import SemanticMixin

    new_head = type("MyHeadLightGCN", (SemanticMixin,), {})  # a head whose name says nothing
    monkeypatch.setattr(records, "get_model", lambda name: new_head)
    assert records.model_kind("MyHeadLightGCN") == "plugin"


def test_records_name_the_cpu_generation_not_only_its_brand():
    from recbole_darec.report.environment import cpu_name, machine_info

    name = cpu_name()
    assert machine_info()["cpu"] == name and name
    if Path("/proc/cpuinfo").is_file() and "cpu family" in Path("/proc/cpuinfo").read_text():
        assert "family " in name and "model " in name  # one brand name covers CPUs of different speed
