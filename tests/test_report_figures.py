"""The report's headline figures: paired differences to the best baseline with t-intervals (diffs.png), and the
t-SNE pair of a DaRec model beside its backbone with the K-means silhouette of each (tsne_pair_<Model>.png).

Records are built by hand as in test_compare.py; the t-SNE pair runs on synthetic embeddings (no training).
"""
import math

import numpy as np
import pytest
from scipy import stats

from recbole_darec.report import CompareOptions, summarize, write_report
from recbole_darec.report import compare as compare_module
from recbole_darec.report.plots import _interval_caption, diff_chart
from recbole_darec.report.stats import paired_difference_interval, paired_values, relative_differences
from recbole_darec.report.tsne import backbone_class, kmeans_silhouette, tsne_pair_plot

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def built(model, values, first_seed=2020, dataset="toy"):
    """Records of ``model`` over consecutive seeds; every metric scales ``values`` so each has its own level."""
    return [{"model": model, "seed": first_seed + i, "dataset": dataset, "train_time_s": 1.0, "epochs_to_best": 3,
             "valid_metric": "recall@20", "checkpoint": f"/nowhere/{model}-{first_seed + i}.pth",
             "test": {m: v * scale for m, scale in zip(METRICS, (0.7, 1.0, 0.45, 0.5))}}
            for i, v in enumerate(values)]


def png_written(paths):
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_interval_of_paired_differences_by_hand():
    mean, half = paired_difference_interval([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    # differences 1, 2, 3: mean 2, sample std 1, t(0.975, df 2) = 4.302653 -> half-width 4.302653 / sqrt(3)
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3)) and half == pytest.approx(2.484138, abs=1e-6)
    assert paired_difference_interval([5.0, 6.0, 7.0], [4.0, 4.0, 4.0], confidence=0.9)[1] == pytest.approx(
        stats.t.ppf(0.95, 2) / math.sqrt(3))
    one_mean, one_half = paired_difference_interval([0.31], [0.30])
    assert one_mean == pytest.approx(0.01) and math.isnan(one_half)  # one seed: a point, no interval


def test_relative_differences_pair_by_seed_and_scale_by_the_baseline_mean():
    base = [0.30, 0.32, 0.31]
    gains = [0.006, 0.003, 0.009]
    records = built("LightGCNBackbone", base) + built("BPR", [0.2, 0.21, 0.2]) \
        + built("DaRecLightGCN", [b + g for b, g in zip(base, gains)]) \
        + built("RLMRecConLightGCN", [0.33, 0.31], first_seed=2021)  # seeds 2021, 2022 only
    summary = summarize(records)
    diffs = relative_differences(summary)
    darec = diffs["DaRecLightGCN"]["recall@20"]
    assert darec.baseline == "LightGCNBackbone" and darec.n == 3
    mean, half = paired_difference_interval([b + g for b, g in zip(base, gains)], base)
    assert darec.pct == pytest.approx(100 * mean / np.mean(base))
    assert darec.half_width_pct == pytest.approx(100 * half / np.mean(base))
    # Scaling by each metric's own baseline mean makes the percentages equal across metrics here.
    assert diffs["DaRecLightGCN"]["ndcg@10"].pct == pytest.approx(darec.pct)
    rlmrec = diffs["RLMRecConLightGCN"]["recall@20"]
    mine, theirs = paired_values(summary.values, "RLMRecConLightGCN", "LightGCNBackbone", "recall@20")
    assert theirs == [0.32, 0.31] and rlmrec.n == 2  # only the seeds both ran
    assert rlmrec.pct == pytest.approx(100 * (np.mean(mine) - np.mean(theirs)) / np.mean(theirs))
    assert set(diffs) == {"DaRecLightGCN", "RLMRecConLightGCN"}  # plugin models only


def test_diff_chart_is_written_by_the_report(tmp_path):
    records = built("LightGCNBackbone", [0.30, 0.32, 0.31]) + built("DaRecLightGCN", [0.305, 0.322, 0.318]) \
        + built("BPR", [0.25, 0.26, 0.24])
    opts = CompareOptions(dataset="toy", models=["BPR", "LightGCNBackbone", "DaRecLightGCN"], seeds=None,
                          out=str(tmp_path), tsne=False)
    paths = write_report(opts, records, log=lambda *a: None)
    png_written(paths["diffs"])
    assert [p.name for p in paths["diffs"]] == ["diffs.png", "diffs.pdf"]
    png_written(paths["bars"])  # the bars stay, as the secondary figure
    caption = _interval_caption(relative_differences(summarize(records)), 0.95)
    assert caption == "95 % t-interval over 3 paired seeds"


def test_diff_chart_with_one_seed_draws_points_and_says_so(tmp_path):
    records = built("LightGCNBackbone", [0.30]) + built("DaRecLightGCN", [0.31])
    summary = summarize(records)
    cell = relative_differences(summary)["DaRecLightGCN"]["recall@20"]
    assert cell.pct == pytest.approx(100 * 0.01 / 0.30) and math.isnan(cell.half_width_pct) and cell.n == 1
    assert _interval_caption(relative_differences(summary), 0.95) == "one seed: points only, no interval"
    png_written(diff_chart(summary, tmp_path / "diffs"))


def test_no_diff_chart_without_a_plugin_model_or_a_baseline(tmp_path):
    assert diff_chart(summarize(built("BPR", [0.2, 0.3]) + built("LightGCN", [0.3, 0.3])), tmp_path / "a") is None
    assert diff_chart(summarize(built("DaRecLightGCN", [0.2, 0.3])), tmp_path / "b") is None
    assert not list(tmp_path.iterdir())


def test_backbone_is_found_from_the_class():
    from recbole_darec.model import get_model

    assert backbone_class(get_model("DaRecLightGCN")).__name__ == "LightGCNBackbone"
    assert backbone_class(get_model("DaRecSGL")).__name__ == "SGLBackbone"
    assert backbone_class(get_model("DaRecLightGCL")).__name__ == "LightGCL"


def test_kmeans_silhouette_is_sklearns_on_the_same_points():
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(0)
    points = rng.normal(size=(3, 8))[np.repeat(np.arange(3), 30)] * 4 + rng.normal(size=(90, 8))
    labels, silhouette = kmeans_silhouette(points, 3)
    assert sorted(np.bincount(labels)) == [30, 30, 30]
    assert silhouette == pytest.approx(silhouette_score(points, labels, metric="cosine"))


def test_tsne_pair_scores_clear_clusters_above_noise(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 40)
    clustered = rng.normal(size=(4, 16))[labels] * 5 + rng.normal(size=(160, 16))
    noise = rng.normal(size=(160, 16))
    paths, info = tsne_pair_plot([("DaRec", clustered), ("backbone", noise)], 4, tmp_path / "pair", max_points=120)
    png_written(paths)
    assert info["users"] == 120 and info["k"] == 4
    assert info["silhouette_cosine"]["DaRec"] > 0.5 > info["silhouette_cosine"]["backbone"]
    with pytest.raises(ValueError, match="different numbers of users"):
        tsne_pair_plot([("a", clustered), ("b", noise[:10])], 4, tmp_path / "bad")


def test_report_pairs_a_darec_row_with_its_backbone_row_on_a_shared_seed(tmp_path, monkeypatch):
    """Wiring only (the drawing is faked): the backbone row comes from the class, the seed is the first both saved;
    without the backbone's checkpoint, or without its row, nothing is drawn."""
    saved = {}
    for model, seed in (("DaRecLightGCN", 2020), ("DaRecLightGCN", 2021), ("LightGCNBackbone", 2021)):
        saved[(model, seed)] = tmp_path / f"{model}-{seed}.pth"
        saved[(model, seed)].write_bytes(b"x")
    records = built("LightGCNBackbone", [0.3, 0.31]) + built("DaRecLightGCN", [0.31, 0.32]) + built("BPR", [.2, .2])
    for record in records:
        record["checkpoint"] = str(saved.get((record["model"], record["seed"]), "/nowhere.pth"))
    drawn = []

    def fake_pair(darec, backbone, stem, max_points):
        drawn.append((darec.name, backbone.name, stem.name, max_points))
        return [stem], {}

    monkeypatch.setattr("recbole_darec.report.tsne.tsne_pair_from_checkpoints", fake_pair)
    monkeypatch.setattr("recbole_darec.report.tsne.tsne_from_checkpoint", lambda c, stem, max_points: ([stem], {}))
    opts = CompareOptions(dataset="toy", models=["BPR", "LightGCNBackbone", "DaRecLightGCN"], seeds=[2020, 2021],
                          out=str(tmp_path / "out"), tsne_max_points=77)
    paths = compare_module._tsne_pair_figures(opts, records, log=lambda *a: None)
    assert drawn == [("DaRecLightGCN-2021.pth", "LightGCNBackbone-2021.pth", "tsne_pair_DaRecLightGCN", 77)]
    assert list(paths) == ["tsne_pair_DaRecLightGCN"]
    saved[("LightGCNBackbone", 2021)].unlink()
    assert compare_module._tsne_pair_figures(opts, records, log=lambda *a: None) == {}
    opts.models = ["BPR", "DaRecLightGCN"]
    assert compare_module._tsne_pair_figures(opts, records, log=lambda *a: None) == {} and len(drawn) == 1
