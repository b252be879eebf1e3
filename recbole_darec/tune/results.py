"""After a sweep: one row per trial (CSV + markdown) and metric-vs-parameter sensitivity plots."""
from pathlib import Path

import pandas as pd

from recbole_darec.text_tables import markdown_table

FINISHED = ("TERMINATED", "ERROR")


def _statuses(grid):
    # ResultGrid hides trial statuses; its analysis lists the trials in the same order as the results.
    analysis = getattr(grid, "_experiment_analysis", None)
    trials = getattr(analysis, "trials", None)
    if trials is not None and len(trials) == len(grid):
        return [t.status for t in trials]
    return ["ERROR" if r.error else "TERMINATED" for r in grid]


def unfinished_trials(exp_path, expected=None):
    """Trials that Ray's saved experiment state (what ``--resume`` continues) does not list as finished.

    On Ctrl+C Ray saves its state with the running trials as PENDING, then marks them TERMINATED in memory only:
    the ResultGrid that ``fit()`` returns cannot tell an interrupted sweep from a finished one, this state can.

    Returns:
        list[str]: ``"<trial_id> <status>"`` per unfinished trial, and ``"<n> not started"`` when the search has
        not yet created ``expected`` trials.
    """
    from ray.tune import ExperimentAnalysis  # lazy: ray, only when a sweep has run

    trials = ExperimentAnalysis(str(exp_path)).trials
    unfinished = [f"{t.trial_id} {t.status}" for t in trials if t.status not in FINISHED]
    if expected is not None and len(trials) < expected:
        unfinished.append(f"{expected - len(trials)} not started")
    return unfinished


def trial_table(grid, space, meta):
    """All trials of a ResultGrid as a DataFrame, best first.

    Columns: trial_id, status, the searched parameters, evaluations (reports made), stopped (why a trial made fewer
    evaluations than planned: ``scheduler``, ``early_stopping`` or ``error``), best_epoch, best_valid_score, and the
    other validation metrics at the best epoch.

    Returns:
        pandas.DataFrame
    """
    rows, statuses = [], _statuses(grid)
    for result, status in zip(grid, statuses):
        metrics = result.metrics or {}
        row = {"trial_id": metrics.get("trial_id") or Path(result.path).name, "status": status}
        row.update({name: result.config.get(name) for name in space.params})
        evaluations = int(metrics.get("training_iteration", 0) or 0)
        row["evaluations"] = evaluations
        row["stopped"] = _stop_reason(result, metrics, evaluations, meta["max_t"], status)
        if "best_valid_score" in metrics:  # the trial's last report carries its best evaluation so far
            row["best_epoch"] = int(metrics.get("best_epoch", -1))
            row["best_valid_score"] = float(metrics["best_valid_score"])
            for key in sorted(k for k in metrics if k.startswith("best_valid_") and k != "best_valid_score"):
                row[key[len("best_"):]] = float(metrics[key])
        rows.append(row)
    table = pd.DataFrame(rows)
    if "best_valid_score" in table:
        table = table.sort_values("best_valid_score", ascending=meta["mode"] == "min", na_position="last")
    table = table.reset_index(drop=True)
    table.attrs["params"] = list(space.params)
    return table


def _stop_reason(result, metrics, evaluations, max_t, status):
    if result.error is not None or status == "ERROR":
        return "error"
    if status not in FINISHED:
        return "unfinished"
    if evaluations >= max_t:
        return ""
    return "early_stopping" if metrics.get("early_stop") else "scheduler"


def to_markdown(table, digits=4):
    """A GitHub-markdown table (no extra dependency)."""

    def cell(value):
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}"
        return "" if value is None else str(value).replace("|", "\\|")

    columns = list(table.columns)
    rows = [[cell(row[c]) for c in columns] for _, row in table.iterrows()]
    return "\n".join(markdown_table(columns, rows)) + "\n"


def write_table(table, exp_path):
    """``trials.csv`` and ``trials.md`` in the experiment folder."""
    exp_path = Path(exp_path)
    table.to_csv(exp_path / "trials.csv", index=False)
    (exp_path / "trials.md").write_text(to_markdown(table), encoding="utf-8")


def sensitivity_plots(table, space, meta, exp_path):
    """``sensitivity_<param>.png``: best validation score of each trial against each searched numeric parameter.

    Returns:
        list[Path]: the written files (none when no trial has a score).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: matplotlib, only for the plots
    from matplotlib.figure import Figure  # no pyplot: never touches the caller's backend

    if "best_valid_score" not in table:
        return []
    scored = table.dropna(subset=["best_valid_score"])
    written = []
    for name, param in space.params.items():
        if not param.is_numeric or name not in scored or scored[name].isna().all():
            continue
        fig = Figure(figsize=(4.5, 3.2), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        x = pd.to_numeric(scored[name], errors="coerce")
        # Trials the scheduler cut short never reached their best: mark them apart from completed ones.
        cut = (scored["stopped"] == "scheduler").to_numpy() if "stopped" in scored else x.isna().to_numpy()
        ax.scatter(x[~cut], scored["best_valid_score"][~cut], s=24, alpha=0.8, label="trial")
        if cut.any():
            ax.scatter(x[cut], scored["best_valid_score"][cut], s=24, marker="x", color="grey",
                       label="stopped by scheduler")
        ax.scatter(x.iloc[:1], scored["best_valid_score"].iloc[:1], s=90, marker="*", color="red", label="best")
        if param.log_scale:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(f"valid {meta['valid_metric']} (best epoch)")
        ax.set_title(f"{meta['valid_metric']} vs {name}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(exp_path) / f"sensitivity_{name}.png"
        fig.savefig(path)
        written.append(path)
    return written
