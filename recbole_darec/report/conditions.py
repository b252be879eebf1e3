"""One dataset under several text conditions: every model's paired difference to a baseline, side by side.

Each condition is a comparison folder written by ``run_compare.py`` (e.g. the real text and the
``--semantic_text_control=half`` / ``permuted`` controls); the baseline (LightGCN) reads no text, so the same seeds
of it are comparable across the folders. The figure has one panel per metric, one row per model, one marker per
condition (the mean of the per-seed differences in % of the baseline's mean, with its 95 % t-interval); the table
under it gives the same numbers with the paired p-value and the seeds on which the model was better.

Usage::

    python -m recbole_darec.report.conditions --baseline=LightGCNBackbone \\
        --models=DaRecLightGCN,RLMRecConLightGCN --out=docs/text-conditions-amazon-scientific \\
        real=docs/compare-amazon-scientific half-permuted=docs/compare-amazon-scientific-half-permuted \\
        permuted=docs/compare-amazon-scientific-permuted

writes ``<out>.png``, ``<out>.pdf`` and ``<out>.md``.
"""
import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from recbole_darec.cli_errors import UserError, run_cli
from recbole_darec.report.records import column_label, read_records
from recbole_darec.report.plots import save_figure
from recbole_darec.report.stats import paired_pvalue, relative_difference

DEFAULT_METRICS = ("recall@20", "ndcg@20")
CONDITION_COLOURS = ("#1b9e77", "#7570b3", "#d95f02", "#e7298a", "#66a61e")


@dataclass
class ConditionCell:
    """A model's paired difference to the baseline in one metric under one text condition."""

    mean: float           # the model's mean over the paired seeds
    std: float
    baseline_mean: float
    pct: float            # 100 * mean(model - baseline) / mean(baseline)
    half_width_pct: float  # of the 95 % t-interval, same scale (nan with one seed)
    pvalue: float          # paired t-test (nan when undefined)
    better: int            # seeds on which the model beat the baseline
    n: int


def _values(records, model, metric):
    """seed -> test value of ``model`` (the latest record of a seed wins, as in the comparison's own table)."""
    return {int(r["seed"]): float(r["test"][metric]) for r in records if r["model"] == model}


def condition_cells(records, baseline, models, metrics):
    """model -> metric -> :class:`ConditionCell` for one folder's records (models without paired seeds left out)."""
    out = {}
    for model in models:
        for metric in metrics:
            mine, base = _values(records, model, metric), _values(records, baseline, metric)
            seeds = sorted(set(mine) & set(base))
            if not seeds:
                continue
            a, b = np.array([mine[s] for s in seeds]), np.array([base[s] for s in seeds])
            pct, half_pct = relative_difference(a, b)
            out.setdefault(model, {})[metric] = ConditionCell(
                float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan, float(b.mean()),
                pct, half_pct, paired_pvalue(a, b), int((a > b).sum()), len(seeds))
    return out


def read_conditions(folders, baseline, models, metrics):
    """condition -> model -> metric -> cell; a folder without runs, or without the baseline, is refused."""
    cells = {}
    for name, folder in folders.items():
        records = read_records(Path(folder) / "runs.jsonl")
        if not records:
            raise UserError(f"{folder}: no runs.jsonl with records (condition {name!r})")
        if not any(r["model"] == baseline for r in records):
            raise UserError(f"{folder}: no run of the baseline {baseline} (condition {name!r})")
        cells[name] = condition_cells(records, baseline, models, metrics)
    return cells


def conditions_chart(cells, baseline, models, metrics, stem, title):
    """The side-by-side figure; returns the PNG and PDF paths."""
    conditions = list(cells)
    fig = Figure(figsize=(3.6 * len(metrics) + 1.6, 0.8 + 0.55 * len(models) * max(1, len(conditions) / 2) + 0.6))
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    step = 0.7 / max(1, len(conditions))
    for ax, metric in zip(axes, metrics):
        for k, condition in enumerate(conditions):
            colour = CONDITION_COLOURS[k % len(CONDITION_COLOURS)]
            label = condition  # once per condition and panel, for the legend
            for row, model in enumerate(models):
                cell = cells[condition].get(model, {}).get(metric)
                if cell is None:
                    continue
                y = len(models) - 1 - row + 0.35 - step * (k + 0.5)
                half = None if math.isnan(cell.half_width_pct) else cell.half_width_pct
                ax.errorbar(cell.pct, y, xerr=half, fmt="o", markersize=4, capsize=3, color=colour, label=label)
                label = None
                ax.annotate(f"{cell.pct:+.1f}%", (cell.pct, y), textcoords="offset points", xytext=(0, 4),
                            ha="center", fontsize=6.5)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(f"{column_label(metric)} vs {baseline}", fontsize=9)
        ax.set_yticks(range(len(models)), models[::-1], fontsize=8)
        ax.set_ylim(-0.6, len(models) - 0.4)
        ax.margins(x=0.2)
        ax.set_xlabel("paired difference, % of baseline mean", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=len(unique), fontsize=8,
               bbox_to_anchor=(0.5, -0.02), title="text", title_fontsize=8)
    seeds = sorted({c.n for by_model in cells.values() for row in by_model.values() for c in row.values()})
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"{seeds[0]}"
    fig.suptitle(f"{title}\n95 % t-interval over {span} paired seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(fig, stem)


def _fmt_p(p):
    return "–" if math.isnan(p) else (f"{p:.1e}" if p < 0.001 else f"{p:.3f}")


def conditions_table(cells, baseline, models, metrics):
    """Markdown: one row per (condition, model)."""
    head = ["Text", "Model", "Seeds"]
    for metric in metrics:
        label = column_label(metric)
        head += [f"{label}", f"vs {baseline} (95 % CI)", "p", "better"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for condition, by_model in cells.items():
        for model in [baseline] + list(models):
            if model == baseline:  # its mean, from any model's cells (they pair over the same seeds)
                row = next(iter(by_model.values()), None)
                if row is None:
                    continue
                values = [str(next(iter(row.values())).n)]
                for metric in metrics:
                    c = row.get(metric)
                    values += [f"{c.baseline_mean:.4f}" if c else "–", "–", "–", "–"]
                lines.append(f"| {condition} | {baseline} | " + " | ".join(values) + " |")
                continue
            row = by_model.get(model)
            if not row:
                continue
            values = [str(next(iter(row.values())).n)]
            for metric in metrics:
                c = row.get(metric)
                if c is None:
                    values += ["–"] * 4
                    continue
                interval = "" if math.isnan(c.half_width_pct) else f" ± {c.half_width_pct:.1f}"
                values += [f"{c.mean:.4f} ± {c.std:.4f}", f"{c.pct:+.1f} %{interval}", _fmt_p(c.pvalue),
                           f"{c.better}/{c.n}"]
            lines.append(f"| {condition} | {model} | " + " | ".join(values) + " |")
    note = (f"Test set, mean ± sample std over seeds; the difference is the mean of the per-seed differences to "
            f"{baseline} in % of its mean, with the 95 % Student-t interval; p: paired t-test "
            f"(scipy.stats.ttest_rel); better: seeds on which the model beat {baseline}.")
    return "\n".join(lines) + "\n\n" + note + "\n"


def _condition(text):
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"{text!r}: give a condition as NAME=FOLDER (e.g. permuted=docs/compare-x)")
    return name, folder


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recbole_darec.report.conditions",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("conditions", nargs="+", type=_condition, help="NAME=FOLDER, one per text condition")
    parser.add_argument("--baseline", default="LightGCNBackbone")
    parser.add_argument("--models", required=True, help="comma-separated rows (model names or variant labels)")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    parser.add_argument("--out", required=True, help="output stem: writes STEM.png, STEM.pdf and STEM.md")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    folders = dict(args.conditions)
    models = [m for m in args.models.split(",") if m]
    metrics = [m for m in args.metrics.split(",") if m]
    cells = read_conditions(folders, args.baseline, models, metrics)
    title = args.title or f"Paired difference to {args.baseline} by text condition"
    paths = conditions_chart(cells, args.baseline, models, metrics, args.out, title)
    table = conditions_table(cells, args.baseline, models, metrics)
    Path(args.out + ".md").write_text(table, encoding="utf-8")
    print(table)
    print("wrote " + ", ".join(str(p) for p in paths) + f", {args.out}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, "python -m recbole_darec.report.conditions"))
