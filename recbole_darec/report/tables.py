"""Render a :class:`Summary` as Markdown, CSV and LaTeX (booktabs) tables.

Rows: one per model (baselines first as given, then plugin models), then one "Improv." row per plugin model with
its relative change over the best baseline of each metric column. Cells: mean ± std over seeds; the best mean of
each column in bold; ``†``/``‡`` after a plugin model's cell when the paired test against the best baseline is
significant (see :mod:`recbole_darec.report.stats`). The CSV is the machine-readable twin: plain numbers only.
"""
import csv
import math
from pathlib import Path

from recbole_darec.report.records import column_label
from recbole_darec.report.stats import BETTER, WORSE
from recbole_darec.text_tables import markdown_table


def _digits(column):
    return 1 if column in ("train_time_s", "epochs_to_best") else 4


def _cell(summary, model, column, bold, pm, marker_fmt):
    digits = _digits(column)
    text = f"{summary.mean[model][column]:.{digits}f}"
    text = bold(text) if summary.is_best(model, column) else text
    std = summary.std[model][column]
    if not math.isnan(std):
        text += f" {pm} {std:.{digits}f}"
    marker = summary.marker(model, column)
    return text + (marker_fmt(marker) if marker else "")


def _improvement_cells(summary, model):
    cells = []
    for column in summary.columns:
        value = summary.improvement.get(model, {}).get(column)
        cells.append("" if value is None or math.isnan(value) else f"{value:+.2f}%")
    return cells


def footnote(summary):
    """One sentence each on what the bold, the markers and the improvement rows mean."""
    test = "paired t-test (scipy.stats.ttest_rel)" if summary.test == "ttest" else "Wilcoxon signed-rank test"
    seeds = sorted({s for m in summary.models for s in summary.values[m][summary.columns[0]]})
    best = ", ".join(f"{column_label(c)} {summary.best_baseline[c]}" for c in summary.metrics
                     if summary.best_baseline.get(c))
    return (f"Mean ± sample std over seeds {', '.join(map(str, seeds))} (test set, best-validation checkpoint). "
            f"Bold: best mean per column (higher is better for metrics, lower for time and epochs). "
            f"{BETTER} / {WORSE}: {test} over seeds vs the best baseline of that column, p < {summary.alpha}, "
            f"plugin model better / worse. Improv.: relative change of the plugin model's mean over the best "
            f"baseline's mean" + (f" (best baselines: {best})." if best else "."))


def _ordered(summary):
    return [m for m in summary.models if summary.kinds[m] == "baseline"] + \
           [m for m in summary.models if summary.kinds[m] == "plugin"]


def to_markdown(summary):
    """GitHub-flavoured Markdown table plus its footnote."""
    header = ["Model", "Seeds"] + [column_label(c) for c in summary.columns]
    rows = [[model, str(summary.n[model])]
            + [_cell(summary, model, c, lambda t: f"**{t}**", "±", lambda mk: mk) for c in summary.columns]
            for model in _ordered(summary)]
    rows += [[f"Improv. {model}", ""] + _improvement_cells(summary, model) for model in summary.improvement]
    return "\n".join(markdown_table(header, rows, right_from=2)) + "\n\n" + footnote(summary) + "\n"


def _tex(text):
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def to_latex(summary, caption=None, label="tab:compare"):
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``), footnote as the caption unless one is given."""
    columns = summary.columns
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{l" + "r" * (len(columns) + 1) + "}", r"\toprule",
             " & ".join(["Model", "Seeds"] + [_tex(column_label(c)) for c in columns]) + r" \\", r"\midrule"]
    marks = {BETTER: r"$^\dagger$", WORSE: r"$^\ddagger$"}
    ordered = _ordered(summary)
    for i, model in enumerate(ordered):
        if i and summary.kinds[model] != summary.kinds[ordered[i - 1]]:
            lines.append(r"\midrule")
        cells = [_cell(summary, model, c, lambda t: rf"\textbf{{{t}}}", r"$\pm$", lambda mk: marks[mk])
                 for c in columns]
        lines.append(" & ".join([_tex(model), str(summary.n[model])] + cells) + r" \\")
    if summary.improvement:
        lines.append(r"\midrule")
    for model in summary.improvement:
        cells = [_tex(c) for c in _improvement_cells(summary, model)]
        lines.append(" & ".join([_tex(f"Improv. {model}"), ""] + cells) + r" \\")
    text = caption or footnote(summary).replace("±", r"$\pm$").replace(BETTER, r"$^\dagger$")
    text = text.replace(WORSE, r"$^\ddagger$").replace("%", r"\%").replace("_", r"\_")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{text}}}", rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def csv_rows(summary):
    """Header and rows of the CSV: per column ``<c>_mean``, ``<c>_std``; per metric ``<c>_improv_pct``, ``<c>_p``."""
    header = ["model", "kind", "seeds"]
    for c in summary.columns:
        header += [f"{c}_mean", f"{c}_std"] + ([f"{c}_improv_pct", f"{c}_p"] if c in summary.metrics else [])
    rows = []
    for model in _ordered(summary):
        row = [model, summary.kinds[model], summary.n[model]]
        for c in summary.columns:
            row += [summary.mean[model][c], _blank(summary.std[model][c])]
            if c in summary.metrics:
                row += [_blank(summary.improvement.get(model, {}).get(c)), _blank(summary.pvalue.get(model, {}).get(c))]
        rows.append(row)
    return header, rows


def _blank(value):
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def write_tables(summary, out_dir):
    """Write ``table.md``, ``table.csv`` and ``table.tex`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "table.md", "csv": out_dir / "table.csv", "tex": out_dir / "table.tex"}
    paths["md"].write_text(to_markdown(summary), encoding="utf-8")
    paths["tex"].write_text(to_latex(summary), encoding="utf-8")
    header, rows = csv_rows(summary)
    with paths["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return paths
