"""Aggregate per-run records into what a results table shows: mean ± std, the best, improvements, significance.

Conventions (also stated under every table):

* std is the sample standard deviation over seeds (ddof = 1); with one seed it is undefined and not shown.
* The *best baseline* of a column is the baseline (see :func:`records.model_kind`) with the best mean in it.
* Relative improvement of a plugin model = (its mean − best baseline's mean) / best baseline's mean, in percent.
* Significance: a paired test over the seeds both models ran (each pair shares its seed, hence on ml-100k its
  random split), plugin model vs the best baseline of that column: ``ttest`` (scipy.stats.ttest_rel, default) or
  ``wilcoxon`` (scipy.stats.wilcoxon; with 3-5 seeds its exact p-value can never drop below 0.05). ``†`` marks
  p < α with the plugin model better, ``‡`` p < α with it worse.
"""
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from recbole_darec.report.records import (
    EXTRA_COLUMNS, column_value, higher_is_better, metric_columns, model_kind,
)

TESTS = ("ttest", "wilcoxon")
BETTER, WORSE = "†", "‡"


def paired_pvalue(a, b, test="ttest"):
    """Two-sided p-value of a paired test between equal-length samples ``a`` and ``b`` (nan when undefined).

    Undefined: fewer than 2 pairs, or no difference at all (identical results are never significant).
    """
    if test not in TESTS:
        raise ValueError(f"unknown test '{test}': use one of {', '.join(TESTS)}")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    diff = a - b
    if len(a) < 2 or np.allclose(diff, 0.0):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant differences: t is infinite, p is 0
        if test == "ttest":
            p = stats.ttest_rel(a, b).pvalue
        else:
            p = stats.wilcoxon(a, b).pvalue
    return float(p)


def paired_values(values, model, reference, column):
    """``(model's values, reference's values)`` over the seeds both ran, in seed order (pairs share a seed, hence
    on ml-100k their split). ``values`` is :attr:`Summary.values`: model -> column -> {seed: value}."""
    seeds = sorted(set(values[model][column]) & set(values[reference][column]))
    return [values[model][column][s] for s in seeds], [values[reference][column][s] for s in seeds]


def paired_difference_interval(a, b, confidence=0.95):
    """Mean of the paired differences ``a - b`` and the half-width of its Student-t interval.

    Half-width = t((1 + confidence) / 2, n - 1) * s / sqrt(n), s the sample std (ddof 1) of the differences; nan
    with fewer than 2 pairs (one seed gives a point, not an interval).
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diff) == 0:
        raise ValueError("no paired values: the two models share no seed")
    if len(diff) < 2:
        return float(diff.mean()), math.nan
    half = stats.t.ppf((1.0 + confidence) / 2.0, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))
    return float(diff.mean()), float(half)


def relative_difference(mine, theirs, confidence=0.95):
    """``(pct, half_width_pct)``: the mean of the paired differences ``mine - theirs`` and the half-width of its
    t-interval, in percent of ``theirs``' mean (taken as a fixed scale, not as a second random quantity; nan when
    that mean is 0)."""
    mean, half = paired_difference_interval(mine, theirs, confidence)
    scale = 100.0 / float(np.mean(theirs)) if np.mean(theirs) else math.nan
    return mean * scale, half * scale


def significance_marker(pvalue, difference, alpha):
    """``†`` for p < ``alpha`` with ``difference`` > 0 (the model better), ``‡`` for p < ``alpha`` otherwise,
    ``""`` when not significant or undefined (nan)."""
    if math.isnan(pvalue) or pvalue >= alpha:
        return ""
    return BETTER if difference > 0 else WORSE


@dataclass
class RelativeDifference:
    """A plugin model's paired difference to a baseline in one metric, in percent of the baseline's mean."""

    baseline: str
    pct: float  # 100 * mean(model - baseline) / mean(baseline), both over the paired seeds
    half_width_pct: float  # of the t-interval, same scale; nan with one seed
    n: int  # paired seeds


def relative_differences(summary, confidence=0.95):
    """plugin model -> metric -> :class:`RelativeDifference` against that metric's best baseline.

    The interval is the t-interval of the per-seed differences divided by the baseline's mean over the same seeds
    (:func:`relative_difference`).
    """
    out = {}
    for model in summary.improvement:
        out[model] = {}
        for metric in summary.metrics:
            reference = summary.best_baseline[metric]
            mine, theirs = paired_values(summary.values, model, reference, metric)
            if not mine:
                continue
            pct, half_pct = relative_difference(mine, theirs, confidence)
            out[model][metric] = RelativeDifference(reference, pct, half_pct, len(mine))
    return out


@dataclass
class Summary:
    """Everything a table or a bar chart needs, keyed by model then column."""

    models: list
    columns: list  # test metrics, then EXTRA_COLUMNS
    kinds: dict
    values: dict  # model -> column -> {seed: value}
    mean: dict
    std: dict
    n: dict  # model -> number of seeds
    best: dict  # column -> model with the best mean
    best_baseline: dict  # column -> baseline with the best mean (metrics only)
    improvement: dict  # plugin model -> metric -> percent over the best baseline
    pvalue: dict  # plugin model -> metric -> p-value vs the best baseline
    test: str = "ttest"
    alpha: float = 0.05
    metrics: list = field(default_factory=list)

    def is_best(self, model, column):
        """Whether ``model`` has (or ties) the best mean of ``column`` among several models."""
        if len(self.models) < 2:
            return False
        return math.isclose(self.mean[model][column], self.mean[self.best[column]][column], rel_tol=1e-9)

    def marker(self, model, column):
        """``†``/``‡`` for a significant difference from the best baseline, else ``""``."""
        return significance_marker(self.pvalue.get(model, {}).get(column, math.nan),
                                   self.improvement.get(model, {}).get(column, math.nan), self.alpha)


def summarize(records, models=None, test="ttest", alpha=0.05):
    """Build a :class:`Summary` from run records (one dataset); ``models`` fixes the row order."""
    if test not in TESTS:
        raise ValueError(f"unknown test '{test}': use one of {', '.join(TESTS)}")
    models = list(models or dict.fromkeys(r["model"] for r in records))
    metrics = metric_columns(records)
    columns = metrics + list(EXTRA_COLUMNS)
    values = {m: {c: {} for c in columns} for m in models}
    for record in records:
        if record["model"] in values:
            for column in columns:
                values[record["model"]][column][int(record["seed"])] = column_value(record, column)
    models = [m for m in models if values[m][columns[0]]]  # models without any finished run are left out
    mean, std, n = {}, {}, {}
    for m in models:
        n[m] = len(values[m][columns[0]])
        mean[m] = {c: float(np.mean(list(v.values()))) for c, v in values[m].items()}
        std[m] = {c: float(np.std(list(v.values()), ddof=1)) if len(v) > 1 else math.nan
                  for c, v in values[m].items()}
    model_class = {r["model"]: r.get("model_class", r["model"]) for r in records}  # variants: label -> model
    kinds = {m: model_kind(model_class.get(m, m)) for m in models}

    def best_of(candidates, column):
        pick = max if higher_is_better(column) else min
        return pick(candidates, key=lambda m: mean[m][column]) if candidates else None

    best = {c: best_of(models, c) for c in columns}
    baselines = [m for m in models if kinds[m] == "baseline"]
    best_baseline = {c: best_of(baselines, c) for c in metrics}
    improvement, pvalue = {}, {}
    for m in (m for m in models if kinds[m] == "plugin" and baselines):
        improvement[m], pvalue[m] = {}, {}
        for c in metrics:
            ref = best_baseline[c]
            base = mean[ref][c]
            improvement[m][c] = 100.0 * (mean[m][c] - base) / base if base else math.nan
            pvalue[m][c] = paired_pvalue(*paired_values(values, m, ref, c), test)
    return Summary(models, columns, kinds, values, mean, std, n, best, best_baseline, improvement, pvalue,
                   test=test, alpha=alpha, metrics=metrics)
