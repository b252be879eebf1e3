"""A side-by-side comparison: validate everything, run the missing (model, seed) pairs, write tables and pictures.

Layout of ``<out>``: ``runs.jsonl`` (one record per finished run; the resume state), ``failures.jsonl`` (runs that
raised; retried on the next invocation), ``compare.json`` (dataset, config files and overrides: a resumed
comparison must not mix settings), ``table.{md,csv,tex}``, ``bars.{png,pdf}``, ``curves.{png,pdf}``,
``tsne_<Model>.{png,pdf}`` for DaRec models (first seed's checkpoint), ``checkpoints/<Model>-seed<seed>/``.
"""
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from recbole_darec.report import records as rec
from recbole_darec.report import runner
from recbole_darec.report.plots import bar_chart, curve_plot
from recbole_darec.report.stats import summarize
from recbole_darec.report.tables import write_tables
from recbole_darec.report.validate import CompareError, validate


@dataclass
class CompareOptions:
    """The comparison's settings; run_compare.py's flags map one to one onto these fields."""

    dataset: str
    models: list  # empty with report_only: every model in runs.jsonl
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

    @property
    def out_dir(self):
        return Path(self.out or f"results/compare-{self.dataset}")

    def settings(self):
        """What must stay the same across invocations writing into one ``out`` folder."""
        return {"dataset": self.dataset, "config_files": [str(f) for f in self.config_files],
                "overrides": self.overrides}


def check_settings(opts):
    """Record the settings on first use of ``out``; refuse a resume whose settings differ."""
    path = opts.out_dir / "compare.json"
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored != opts.settings():
            raise CompareError(
                f"{opts.out_dir} holds a comparison with other settings ({json.dumps(stored)}), not "
                f"{json.dumps(opts.settings())}: its runs would not be comparable. Use another --out."
            )
    else:
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(opts.settings(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def plan(opts, existing):
    """Run specs for the (model, seed) pairs without a record, models outer, seeds inner."""
    done = rec.done_keys(existing, opts.dataset)
    specs = []
    for model in opts.models:
        for seed in opts.seeds:
            if (model, seed) not in done:
                folder = opts.out_dir / "checkpoints" / f"{model}-seed{seed}"
                specs.append({"model": model, "dataset": opts.dataset, "seed": seed, "checkpoint_dir": str(folder),
                              "config_files": [str(f) for f in opts.config_files], "overrides": opts.overrides})
    return specs


def run_comparison(opts, log=print):
    """Validate, run what is missing, write the report. Returns a dict with the paths, counts and wall time."""
    started = time.perf_counter()
    runs_file = opts.out_dir / rec.RUNS_FILE
    if opts.report_only and not opts.models:
        opts.models = list(dict.fromkeys(r["model"] for r in rec.select(rec.read_records(runs_file), opts.dataset)))
    validate(opts.models, opts.dataset, opts.config_files, opts.overrides)
    if not opts.report_only:  # a report trains nothing, so it cannot mix settings
        check_settings(opts)
    specs = [] if opts.report_only else plan(opts, rec.read_records(runs_file))
    total, ran, failed = len(specs), [], []
    if specs:
        log(f"{total} run(s) to do ({len(opts.models) * len(opts.seeds) - total} already in {runs_file})")
        for spec in specs:  # a stale file from an interrupted run must not be mistaken for this run's checkpoint
            for old in Path(spec["checkpoint_dir"]).glob("*.pth*"):
                old.unlink()

    def on_record(spec, record):
        rec.append_record(runs_file, record)
        ran.append((spec["model"], spec["seed"]))
        metric = record["valid_metric"]
        log(f"[{len(ran) + len(failed)}/{total}] {spec['model']} seed={spec['seed']}: test {metric}="
            f"{record['test'].get(metric, float('nan')):.4f}, {record['train_time_s']:.1f}s training, "
            f"best at epoch {record['epochs_to_best']}")

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
    """Tables, bar chart, curves and t-SNE figures for the requested models and seeds."""
    chosen = rec.select(all_records, opts.dataset, set(opts.models), None if opts.seeds is None else set(opts.seeds))
    if not chosen:
        log("no finished runs yet: nothing to report")
        return {}
    summary = summarize(chosen, models=opts.models, test=opts.test, alpha=opts.alpha)
    out = opts.out_dir
    paths = {f"table.{k}": p for k, p in write_tables(summary, out).items()}
    paths["bars"] = bar_chart(summary, out / "bars", title=f"{opts.dataset}: test metrics (mean ± std over seeds)")
    paths["curves"] = curve_plot(chosen, summary.models, out / "curves")
    if opts.tsne:
        paths.update(_tsne_figures(opts, chosen, log))
    log((out / "table.md").read_text(encoding="utf-8"))
    return paths


def _tsne_figures(opts, chosen, log):
    from recbole_darec.model import get_model
    from recbole_darec.report.tsne import tsne_from_checkpoint

    paths = {}
    for model in opts.models:
        if not hasattr(get_model(model), "user_clusters"):
            continue
        order = opts.seeds or sorted({int(r["seed"]) for r in chosen})  # the first seed's run is drawn
        runs = sorted((r for r in chosen if r["model"] == model), key=lambda r: order.index(int(r["seed"])))
        checkpoint = _find_checkpoint(opts, runs[0]) if runs else None
        stem = opts.out_dir / f"tsne_{model}"
        if checkpoint is None:
            log(f"t-SNE for {model} skipped: no checkpoint of its first seed's run on this machine")
            continue
        png = stem.with_suffix(".png")
        if png.is_file() and png.stat().st_mtime >= checkpoint.stat().st_mtime:
            paths[f"tsne_{model}"] = [png, stem.with_suffix(".pdf")]  # up to date: t-SNE is slow, keep it
            continue
        paths[f"tsne_{model}"], info = tsne_from_checkpoint(checkpoint, stem, max_points=opts.tsne_max_points)
        log(f"t-SNE {model} (seed {runs[0]['seed']}): {info}")
    return paths


def _find_checkpoint(opts, record):
    """The run's recorded checkpoint, or the one in its folder under ``out`` (the folder may have moved)."""
    recorded = Path(record["checkpoint"])
    if recorded.is_file():
        return recorded
    folder = opts.out_dir / "checkpoints" / f"{record['model']}-seed{record['seed']}"
    found = sorted(folder.glob(f"{record['model']}-*.pth"))
    return found[-1] if found else None
