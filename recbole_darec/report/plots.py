"""Comparison pictures with matplotlib (headless): paired differences to the best baseline with 95 % intervals
(the headline), bar chart with error bars, validation curves.

Every figure is written twice, ``<stem>.png`` (150 dpi) and ``<stem>.pdf`` (vector, for papers). Figures are
``matplotlib.figure.Figure`` objects saved directly (no pyplot): no display is needed on servers and Ray workers,
and importing this module leaves the caller's matplotlib backend alone.
"""
import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from recbole_darec.report.records import column_label
from recbole_darec.report.stats import relative_differences

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
    return paths


def colormap(name):
    """A named matplotlib colormap (without pyplot)."""
    return matplotlib.colormaps[name]


def bar_chart(summary, stem, title=None):
    """One panel per test metric, one bar per model (mean over seeds, error bar = std; colour = kind)."""
    metrics = summary.metrics
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    models = summary.models
    fig = Figure(figsize=(3.2 * cols + 0.4 * len(models), 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
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
    handles = [Rectangle((0, 0), 1, 1, color=KIND_COLOURS[k]) for k in kinds]
    fig.legend(handles, kinds, loc="upper right", fontsize=8)
    fig.suptitle(title or "Test metrics (mean ± std over seeds)")
    fig.tight_layout()
    return save_figure(fig, stem)


# Interval wholly above zero / wholly below / covering it (or a single seed): the same verdict as a two-sided paired
# t-test at 1 - confidence, since both use the same t statistic.
DIFF_COLOURS = {"better": "#1b9e77", "worse": "#d95f02", "unclear": "#4d4d4d"}
DIFF_LEGEND = {"better": "interval above 0", "worse": "interval below 0", "unclear": "interval covers 0"}


def _diff_verdict(cell):
    if math.isnan(cell.half_width_pct):
        return "unclear"
    if cell.pct - cell.half_width_pct > 0:
        return "better"
    return "worse" if cell.pct + cell.half_width_pct < 0 else "unclear"


def _interval_caption(diffs, confidence):
    counts = sorted({cell.n for row in diffs.values() for cell in row.values()})
    if counts == [1]:
        return "one seed: points only, no interval"
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    note = " (1 seed: point only)" if counts[0] == 1 else ""
    return f"{100 * confidence:g} % t-interval over {seeds} paired seeds{note}"


def diff_chart(summary, stem, title=None, confidence=0.95):
    """Headline figure: one panel per metric, one row per plugin model, its paired difference to that metric's best
    baseline in % of the baseline's mean, with the t-interval over seeds (the point alone with one seed).

    Returns the paths, or None when there is nothing to compare (no plugin model or no baseline).
    """
    diffs = relative_differences(summary, confidence)
    metrics = [m for m in summary.metrics if any(m in row for row in diffs.values())]
    if not metrics:
        return None
    models = list(diffs)
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(3.3 * cols + 1.2, (0.9 + 0.35 * len(models)) * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    y = np.arange(len(models))[::-1]  # the table's first plugin row on top
    for ax, metric in zip(axes.flat, metrics):
        cells = [diffs[m].get(metric) for m in models]
        for row, cell in zip(y, cells):
            if cell is None:
                continue
            half = None if math.isnan(cell.half_width_pct) else cell.half_width_pct
            ax.errorbar(cell.pct, row, xerr=half, fmt="o", markersize=4, capsize=3,
                        color=DIFF_COLOURS[_diff_verdict(cell)])
            ax.annotate(f"{cell.pct:+.1f}%", (cell.pct, row), textcoords="offset points", xytext=(0, 5),
                        ha="center", fontsize=7)
        ax.axvline(0.0, color="black", linewidth=0.8)
        baselines = sorted({cell.baseline for cell in cells if cell})
        ax.set_title(f"{column_label(metric)} vs {', '.join(baselines)}", fontsize=9)
        ax.set_yticks(y, models, fontsize=8)
        ax.set_ylim(-0.7, len(models) - 0.3)
        ax.margins(x=0.25)  # room for the value labels
        ax.set_xlabel("difference, % of baseline mean", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    shown = [v for v in DIFF_COLOURS if any(_diff_verdict(c) == v for row in diffs.values() for c in row.values())]
    handles = [Rectangle((0, 0), 1, 1, color=DIFF_COLOURS[v]) for v in shown]
    one_seed = any(c.n == 1 for row in diffs.values() for c in row.values())
    legend = {**DIFF_LEGEND, "unclear": DIFF_LEGEND["unclear"] + (" / one seed" if one_seed else "")}
    fig.legend(handles, [legend[v] for v in shown], loc="lower center", ncol=3, fontsize=7,
               bbox_to_anchor=(0.5, -0.02))
    head = title or "Paired difference to the best baseline"
    fig.suptitle(f"{head}\n{_interval_caption(diffs, confidence)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
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
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.subplots()
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
