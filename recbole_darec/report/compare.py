"""A side-by-side comparison: validate everything, run the missing (model, seed) pairs, write tables and pictures.

Layout of ``<out>``: ``runs.jsonl`` (one record per finished run; the resume state), ``failures.jsonl`` (runs that
raised; retried on the next invocation), ``compare.json`` (dataset, config files and overrides: a resumed
comparison must not mix settings), ``table.{md,csv,tex}``, ``bars.{png,pdf}``, ``curves.{png,pdf}``,
``diffs.{png,pdf}`` (paired differences to the best baseline, the headline figure), ``tsne_<Model>.{png,pdf}`` for
DaRec models (first seed's checkpoint), ``tsne_pair_<Model>.{png,pdf}`` beside its backbone's row (same seed),
``checkpoints/<Model>-seed<seed>/`` (the best and the every-epoch checkpoint: an interrupted run continues from the
latter on the next invocation).
"""
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from recbole_darec.checkpoints import LAST_SUFFIX
from recbole_darec.model import get_model
from recbole_darec.report import records as rec
from recbole_darec.report import runner, tsne
from recbole_darec.report.plots import bar_chart, curve_plot, diff_chart, figure_paths
from recbole_darec.report.stats import summarize
from recbole_darec.report.tables import write_tables
from recbole_darec.report.errors import CompareError
from recbole_darec.report.validate import validate
from recbole_darec.report.variants import resolve
from recbole_darec.writable import check_writable


@dataclass
class CompareOptions:
    """The comparison's settings; run_compare.py's flags map one to one onto these fields."""

    dataset: str
    models: list  # row labels: model names or variant labels; empty with report_only: every row in runs.jsonl
    seeds: list  # None with report_only: every seed in runs.jsonl
    out: str = None  # default results/compare-<dataset>
    config_files: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    parallel: int = 1
    ray: bool = False
    address: str = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    test: str = "ttest"
    alpha: float = 0.05
    tsne: bool = True
    tsne_max_points: int = 5000
    report_only: bool = False
    progress_every: float = 60.0  # seconds between a run's progress lines (0: every evaluation; None: none)
    variants: dict = field(default_factory=dict)  # label -> {"model": name, "overrides": {...}} (variants.py)

    @property
    def out_dir(self):
        return Path(self.out or f"results/compare-{self.dataset}")

    def settings(self):
        """What must stay the same across invocations writing into one ``out`` folder."""
        settings = {"dataset": self.dataset, "config_files": [str(f) for f in self.config_files],
                    "overrides": self.overrides}
        if self.variants:  # a resumed comparison must not redefine a row either
            settings["variants"] = self.variants
        return settings


def check_settings(opts):
    """Record the settings on first use of ``out``; refuse a resume whose settings differ.

    Variants are compared label by label: a later invocation may add labels, not redefine stored ones."""
    path = opts.out_dir / "compare.json"
    current = opts.settings()
    if not path.is_file():
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    stored_variants, current_variants = stored.pop("variants", {}), current.pop("variants", {})
    redefined = [k for k, v in current_variants.items() if k in stored_variants and stored_variants[k] != v]
    if stored != current or redefined:
        what = f"variant(s) {', '.join(redefined)} defined differently" if redefined else (
            f"other settings ({json.dumps(stored)}), not {json.dumps(current)}")
        raise CompareError(f"{opts.out_dir} holds a comparison with {what}: its runs would not be comparable. "
                           "Use another --out.")
    merged = {**stored_variants, **current_variants}
    if merged != stored_variants:
        path.write_text(json.dumps({**stored, "variants": merged}, indent=2, sort_keys=True) + "\n",
                        encoding="utf-8")


def plan(opts, existing):
    """Run specs for the (model, seed) pairs without a record, models outer, seeds inner."""
    done = rec.done_keys(existing, opts.dataset)
    specs = []
    for label in opts.models:
        model_class, overrides, config_files = resolve(label, opts.variants, opts.overrides, opts.config_files)
        for seed in opts.seeds:
            if (label, seed) not in done:
                folder = opts.out_dir / "checkpoints" / f"{label}-seed{seed}"
                specs.append({"model": label, "model_class": model_class, "dataset": opts.dataset, "seed": seed,
                              "checkpoint_dir": str(folder), "config_files": [str(f) for f in config_files],
                              "overrides": overrides, "progress_every": opts.progress_every})
    return specs


def run_comparison(opts, log=print):
    """Validate, run what is missing, write the report. Returns a dict with the paths, counts and wall time."""
    started = time.perf_counter()
    check_writable(opts.out_dir, "--out", "use another --out", error=CompareError)  # tables, records, checkpoints
    runs_file = opts.out_dir / rec.RUNS_FILE
    stored = opts.out_dir / "compare.json"
    if opts.report_only and not opts.variants and stored.is_file():  # rows of a variants comparison
        opts.variants = json.loads(stored.read_text(encoding="utf-8")).get("variants", {})
    if opts.report_only and not opts.models:
        opts.models = list(dict.fromkeys(r["model"] for r in rec.select(rec.read_records(runs_file), opts.dataset)))
    validate(opts.models, opts.dataset, opts.config_files, opts.overrides, opts.variants)
    if not opts.report_only:  # a report trains nothing, so it cannot mix settings
        check_settings(opts)
    specs = [] if opts.report_only else plan(opts, rec.read_records(runs_file))
    total, ran, failed = len(specs), [], []
    if specs:  # an interrupted run continues from its every-epoch checkpoint (runner.run_one)
        log(f"{total} run(s) to do ({len(opts.models) * len(opts.seeds) - total} already in {runs_file})")

    def on_record(spec, record):
        rec.append_record(runs_file, rec.portable(record, opts.out_dir.resolve()))
        ran.append((spec["model"], spec["seed"]))
        metric = record["valid_metric"]
        resumed = record.get("resumed_from_epoch")
        log(f"[{len(ran) + len(failed)}/{total}] {spec['model']} seed={spec['seed']}: test {metric}="
            f"{record['test'].get(metric, float('nan')):.4f}, {record['train_time_s']:.1f}s training, "
            f"best at epoch {record['epochs_to_best']}"
            + ("" if resumed is None else f" (resumed after epoch {resumed})"))

    def on_error(spec, exc):
        failed.append((spec["model"], spec["seed"]))
        entry = {"model": spec["model"], "seed": spec["seed"], "dataset": spec["dataset"], "error": repr(exc),
                 "traceback": "".join(traceback.format_exception(exc)), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        rec.append_record(opts.out_dir / "failures.jsonl", entry)
        log(f"[{len(ran) + len(failed)}/{total}] {spec['model']} seed={spec['seed']} FAILED: {exc!r}")

    ray_options = None
    if opts.ray:
        ray_options = {"address": opts.address, "cpus_per_run": opts.cpus_per_run, "gpus_per_run": opts.gpus_per_run}
    runner.run_many(specs, on_record, on_error, parallel=opts.parallel, ray_options=ray_options)
    paths = write_report(opts, rec.read_records(runs_file), log=log)
    wall = time.perf_counter() - started
    log(f"total wall time: {wall:.1f}s ({len(ran)} run(s) now, {len(failed)} failed)")
    return {"ran": ran, "failed": failed, "paths": paths, "wall_time_s": wall}


def write_report(opts, all_records, log=print):
    """Tables, paired-difference chart, bar chart, curves and t-SNE figures for the requested models and seeds."""
    chosen = rec.select(all_records, opts.dataset, set(opts.models), None if opts.seeds is None else set(opts.seeds))
    if not chosen:
        log("no finished runs yet: nothing to report")
        return {}
    summary = summarize(chosen, models=opts.models, test=opts.test, alpha=opts.alpha)
    out = opts.out_dir
    paths = {f"table.{k}": p for k, p in write_tables(summary, out).items()}
    diffs = diff_chart(summary, out / "diffs", title=f"{opts.dataset}: paired difference to the best baseline")
    if diffs:  # needs a plugin model and a baseline
        paths["diffs"] = diffs
    paths["bars"] = bar_chart(summary, out / "bars", title=f"{opts.dataset}: test metrics (mean ± std over seeds)")
    paths["curves"] = curve_plot(chosen, summary.models, out / "curves")
    if opts.tsne:
        paths.update(_tsne_figures(opts, chosen, log))
        paths.update(_tsne_pair_figures(opts, chosen, log))
    log((out / "table.md").read_text(encoding="utf-8"))
    return paths


def _tsne_figures(opts, chosen, log):
    paths = {}
    for model in opts.models:
        model_class = _model_class(opts, chosen, model)
        if not hasattr(get_model(model_class), "user_clusters"):
            continue
        order = opts.seeds or sorted({int(r["seed"]) for r in chosen})  # the first seed's run is drawn
        runs = sorted((r for r in chosen if r["model"] == model), key=lambda r: order.index(int(r["seed"])))
        checkpoint = _find_checkpoint(opts, runs[0], model_class) if runs else None
        stem = opts.out_dir / f"tsne_{model}"
        if checkpoint is None:
            log(f"t-SNE for {model} skipped: no checkpoint of its first seed's run on this machine")
            continue
        png, pdf = figure_paths(stem)
        if png.is_file() and png.stat().st_mtime >= checkpoint.stat().st_mtime:
            paths[f"tsne_{model}"] = [png, pdf]  # up to date: t-SNE is slow, keep it
            continue
        paths[f"tsne_{model}"], info = tsne.tsne_from_checkpoint(checkpoint, stem, max_points=opts.tsne_max_points)
        log(f"t-SNE {model} (seed {runs[0]['seed']}): {info}")
    return paths


def _tsne_pair_figures(opts, chosen, log):
    """DaRec rows beside their backbone's row (the class they are composed with), same seed, when both saved."""
    classes = {label: _model_class(opts, chosen, label) for label in opts.models}
    order = opts.seeds or sorted({int(r["seed"]) for r in chosen})
    paths = {}
    for model, model_class in classes.items():
        cls = get_model(model_class)
        base = tsne.backbone_class(cls) if hasattr(cls, "user_clusters") else None
        partners = [label for label, c in classes.items() if base is not None and c == base.__name__]
        if not partners:
            continue  # no backbone row in this comparison
        partner = base.__name__ if base.__name__ in partners else partners[0]  # the plain row before a variant
        found = _checkpoints_of_a_shared_seed(opts, chosen, (model, partner), classes, order)
        if found is None:
            log(f"t-SNE pair {model} / {partner} skipped: no seed with both checkpoints on this machine")
            continue
        seed, (darec_checkpoint, backbone_checkpoint) = found
        stem = opts.out_dir / f"tsne_pair_{model}"
        png, pdf = figure_paths(stem)
        newest = max(darec_checkpoint.stat().st_mtime, backbone_checkpoint.stat().st_mtime)
        if png.is_file() and png.stat().st_mtime >= newest:
            paths[f"tsne_pair_{model}"] = [png, pdf]  # up to date: t-SNE is slow, keep it
            continue
        paths[f"tsne_pair_{model}"], info = tsne.tsne_pair_from_checkpoints(
            darec_checkpoint, backbone_checkpoint, stem, max_points=opts.tsne_max_points)
        log(f"t-SNE pair {model} / {partner} (seed {seed}): {info}")
    return paths


def _checkpoints_of_a_shared_seed(opts, chosen, labels, classes, order):
    """(seed, checkpoints of ``labels``) for the first seed in ``order`` where every one is on disk, else None."""
    for seed in order:
        runs = [next((r for r in chosen if r["model"] == label and int(r["seed"]) == seed), None) for label in labels]
        if None in runs:
            continue
        checkpoints = [_find_checkpoint(opts, run, classes[run["model"]]) for run in runs]
        if None not in checkpoints:
            return seed, checkpoints
    return None


def _model_class(opts, records, label):
    """The model class name behind a row label (variants file, else the runs' records, else the label)."""
    if label in opts.variants:
        return opts.variants[label]["model"]
    return next((r.get("model_class", label) for r in records if r["model"] == label), label)


def _find_checkpoint(opts, record, model_class):
    """The run's recorded checkpoint, or the one in its folder under ``out`` (the folder may have moved)."""
    recorded = rec.resolve_path(record["checkpoint"], opts.out_dir)
    if recorded.is_file():
        return recorded
    folder = opts.out_dir / "checkpoints" / f"{record['model']}-seed{record['seed']}"
    # RecBole names checkpoints after the model class; the every-epoch .last.pth is not the best model
    found = sorted(p for p in folder.glob(f"{model_class}-*.pth") if not p.name.endswith(LAST_SUFFIX))
    return found[-1] if found else None
