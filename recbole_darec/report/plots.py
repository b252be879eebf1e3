"""Comparison pictures with matplotlib (headless): bar chart with error bars, validation curves.

Every figure is written twice, ``<stem>.png`` (150 dpi) and ``<stem>.pdf`` (vector, for papers).
"""
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and Ray workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from recbole_darec.report.records import column_label  # noqa: E402

KIND_COLOURS = {"baseline": "#7f8c9a", "plugin": "#d95f02"}


def figure_paths(stem):
    """``[<stem>.png, <stem>.pdf]``. The suffix is appended, not swapped: a stem taken from a row label such as
    ``tsne_DaRec-lam0.3`` keeps its ``.3`` (``Path.with_suffix`` would write ``tsne_DaRec-lam0.png``)."""
    stem = Path(stem)
    return [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]


def save_figure(fig, stem):
    """Save ``fig`` as PNG and PDF next to each other; returns both paths."""
    paths = figure_paths(stem)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def bar_chart(summary, stem, title=None):
    """One panel per test metric, one bar per model (mean over seeds, error bar = std; colour = kind)."""
    metrics = summary.metrics
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    models = summary.models
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 0.4 * len(models), 2.8 * rows), squeeze=False)
    x = np.arange(len(models))
    for ax, metric in zip(axes.flat, metrics):
        means = [summary.mean[m][metric] for m in models]
        errs = [0.0 if math.isnan(summary.std[m][metric]) else summary.std[m][metric] for m in models]
        colours = [KIND_COLOURS[summary.kinds[m]] for m in models]
        ax.bar(x, means, yerr=errs, capsize=3, color=colours, edgecolor="black", linewidth=0.5)
        ax.set_title(column_label(metric))
        ax.set_xticks(x, models, rotation=35, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    kinds = [k for k in KIND_COLOURS if k in summary.kinds.values()]
    handles = [plt.Rectangle((0, 0), 1, 1, color=KIND_COLOURS[k]) for k in kinds]
    fig.legend(handles, kinds, loc="upper right", fontsize=8)
    fig.suptitle(title or "Test metrics (mean ± std over seeds)")
    fig.tight_layout()
    return save_figure(fig, stem)


def curve_stats(records):
    """Epochs, mean and std of the validation score per epoch over a model's runs (runs stopping early drop out)."""
    by_epoch = {}
    for record in records:
        for point in record.get("curve", []):
            by_epoch.setdefault(int(point["epoch"]), []).append(float(point["score"]))
    epochs = sorted(by_epoch)
    mean = [float(np.mean(by_epoch[e])) for e in epochs]
    std = [float(np.std(by_epoch[e])) for e in epochs]
    return epochs, mean, std


def curve_plot(records, models, stem, metric_name=None):
    """Validation metric per epoch, mean over seeds with a ±std band, one line per model."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    drawn = 0
    for model in models:
        epochs, mean, std = curve_stats([r for r in records if r["model"] == model])
        if not epochs:
            continue
        x = np.asarray(epochs) + 1  # epoch numbers as people count them (RecBole logs from 0)
        line = ax.plot(x, mean, marker="o", markersize=3, label=model)[0]
        drawn += 1
        ax.fill_between(x, np.subtract(mean, std), np.add(mean, std), color=line.get_color(), alpha=0.15)
    metric_name = metric_name or next((r.get("valid_metric") for r in records if r.get("valid_metric")), "score")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric_name}")
    ax.set_title("Training curves (mean over seeds)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    else:  # records from before curves were kept, or runs without validation
        ax.text(0.5, 0.5, "no validation curves in these runs", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return save_figure(fig, stem)
