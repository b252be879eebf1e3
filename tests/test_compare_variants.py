"""Named config variants as rows of a comparison (run_compare.py --variants): parsing, validation before any
run, real 1-epoch runs of two BPR variants next to plain BPR on ml-100k, resume rules, table kinds."""
import json
from pathlib import Path

import pytest

from recbole_darec.report import CompareOptions, records, run_comparison, runner, summarize
from recbole_darec.report.cli import main
from recbole_darec.report.errors import CompareError
from recbole_darec.report.variants import load_variants, resolve

FAST = {"epochs": 1, "train_batch_size": 4096, "eval_batch_size": 409600, "embedding_size": 32,
        "load_col": {"inter": ["user_id", "item_id"]}}


def write(tmp_path, text, name="variants.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_variants_file_is_parsed_and_resolved(tmp_path):
    path = write(tmp_path, "BPR-d16: {model: BPR, embedding_size: 16}\nDaRec-lam0.3: {model: DaRecLightGCN, "
                           "darec_lambda: 0.3}\n")
    variants = load_variants(path)
    assert variants["BPR-d16"] == {"model": "BPR", "overrides": {"embedding_size": 16}}
    assert resolve("DaRec-lam0.3", variants, {"epochs": 5, "darec_lambda": 1.0}) == (
        "DaRecLightGCN", {"epochs": 5, "darec_lambda": 0.3}, [])  # the variant's key wins
    assert resolve("LightGCN", variants, {"epochs": 5}, ["a.yaml"]) == ("LightGCN", {"epochs": 5}, ["a.yaml"])


def test_a_variant_names_its_own_config_files_read_after_the_comparisons(tmp_path):
    own = write(tmp_path, "embedding_size: 16\n", name="own.yaml")
    path = write(tmp_path, f"BPR-own: {{model: BPR, config_files: [{own}], epochs: 2}}\n"
                           f"BPR-one: {{model: BPR, config_files: {own}}}\n")
    variants = load_variants(path)
    assert variants["BPR-own"] == {"model": "BPR", "overrides": {"epochs": 2}, "config_files": [str(own)]}
    assert resolve("BPR-one", variants, {}, ["shared.yaml"]) == ("BPR", {}, ["shared.yaml", str(own)])
    for bad, message in ((f"x: {{model: BPR, config_files: [{tmp_path / 'nope.yaml'}]}}", "nope.yaml"),
                         ("x: {model: BPR, config_files: {a: 1}}", "path or a list")):
        with pytest.raises(CompareError, match=message):
            load_variants(write(tmp_path, bad, name="bad.yaml"))


@pytest.mark.parametrize("text, message", [
    ("a b: {model: BPR}", "label 'a b'"),
    ("x: {embedding_size: 16}", "variant 'x' needs 'model"),
    ("x: {model: BPR, seed: 3}", "sets seed"),
    ("- BPR", "expected a mapping"),
    ("x: [unclosed", "not valid YAML"),
])
def test_bad_variants_files_name_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(CompareError, match=message) as err:
        load_variants(path)
    assert str(path) in str(err.value)
    with pytest.raises(CompareError, match="not found"):
        load_variants(tmp_path / "missing.yaml")


def test_unknown_variant_key_or_model_fails_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_one", lambda spec: pytest.fail("a run started"))
    path = write(tmp_path, "BPR-typo: {model: BPR, embeding_size: 16}\nNope: {model: NoSuchModel}\n")
    assert main(["--dataset=ml-100k", "--models=BPR-typo", f"--variants={path}", f"--out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert "'embeding_size'" in err and "embedding_size" in err and "BPR-typo" in err
    assert main(["--dataset=ml-100k", "--models=Nope", f"--variants={path}", f"--out={tmp_path / 'o'}"]) == 2
    assert "NoSuchModel" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_variant_rows_train_with_their_keys_and_resume_rules(tmp_path):
    lr_file = write(tmp_path, "learning_rate: 0.01\n", name="lr.yaml")
    path = write(tmp_path, f"BPR-d16: {{model: BPR, embedding_size: 16}}\nBPR-lr1e-2: {{model: BPR, config_files: "
                           f"[{lr_file}]}}\n")
    out = tmp_path / "o"
    opts = CompareOptions(dataset="ml-100k", models=["BPR", "BPR-d16"], seeds=[2020], out=str(out), overrides=FAST,
                          tsne=False, variants=load_variants(path))
    result = run_comparison(opts, log=lambda *a: None)
    assert sorted(result["ran"]) == [("BPR", 2020), ("BPR-d16", 2020)]
    runs = {r["model"]: r for r in records.read_records(out / "runs.jsonl")}
    assert runs["BPR-d16"]["model_class"] == "BPR" and runs["BPR-d16"]["overrides"]["embedding_size"] == 16
    assert runs["BPR"]["overrides"]["embedding_size"] == 32
    assert runs["BPR-d16"]["test"] != runs["BPR"]["test"]  # a different model, same split and seed
    assert list((out / "checkpoints" / "BPR-d16-seed2020").glob("BPR-*.pth"))
    table = (out / "table.md").read_text()
    assert "| BPR-d16 | 1 |" in table and "| BPR | 1 |" in table
    # a later invocation may add a label ...
    more = CompareOptions(**{**opts.__dict__, "models": ["BPR-lr1e-2"]})
    assert run_comparison(more, log=lambda *a: None)["ran"] == [("BPR-lr1e-2", 2020)]
    lr_run = [r for r in records.read_records(out / "runs.jsonl") if r["model"] == "BPR-lr1e-2"][0]
    assert lr_run["config_files"] == [str(lr_file)] and lr_run["test"] != runs["BPR"]["test"]
    assert set(json.loads((out / "compare.json").read_text())["variants"]) == {"BPR-d16", "BPR-lr1e-2"}
    # ... but not redefine one that has runs
    changed = load_variants(write(tmp_path, "BPR-d16: {model: BPR, embedding_size: 8}\n", "changed.yaml"))
    with pytest.raises(CompareError, match="variant.*BPR-d16 defined differently"):
        run_comparison(CompareOptions(**{**opts.__dict__, "variants": changed}), log=lambda *a: None)
    # --report-only finds the rows' models in compare.json
    (out / "table.md").unlink()
    assert main(["--dataset=ml-100k", f"--out={out}", "--report-only", "--no-tsne"]) == 0
    assert "| BPR-lr1e-2 | 1 |" in (out / "table.md").read_text()


def test_a_variant_is_a_baseline_or_plugin_row_by_its_model():
    def record(label, model_class, value):
        return {"model": label, "model_class": model_class, "seed": 2020, "dataset": "toy", "train_time_s": 1.0,
                "epochs_to_best": 1, "valid_metric": "recall@20", "test": {"recall@20": value}}

    summary = summarize([record("LGCN-3layers", "LightGCNBackbone", 0.30), record("DaRec-lam0.3", "DaRecLightGCN", 0.31)])
    assert summary.kinds == {"LGCN-3layers": "baseline", "DaRec-lam0.3": "plugin"}
    assert summary.improvement["DaRec-lam0.3"]["recall@20"] == pytest.approx(100 * 0.01 / 0.30)


def test_killing_the_driver_stops_its_worker_processes(tmp_path):
    """``kill <run_compare pid>`` (SIGTERM to the driver only) must not leave runs training in orphaned workers."""
    import os
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux-only")
    script = Path(__file__).resolve().parents[1] / "run_compare.py"
    workers = []
    driver = subprocess.Popen([sys.executable, str(script), "--dataset=ml-100k", "--models=BPR", "--seeds=2",
                               "--parallel=2", "--no-tsne", f"--out={tmp_path / 'o'}", "--epochs=50"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):  # wait until both workers exist
            children = psutil.Process(driver.pid).children(recursive=True)
            workers = [p for p in children if "spawn_main" in " ".join(p.cmdline())]
            if len(workers) == 2:
                break
            time.sleep(0.5)
        assert len(workers) == 2
        time.sleep(3)  # let them start training
        os.kill(driver.pid, signal.SIGTERM)
        driver.wait(timeout=60)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, [p.pid for p in alive]
    finally:
        if driver.poll() is None:
            driver.kill()
        for worker in workers:  # never leave a training process behind, even when the test fails
            if worker.is_running():
                worker.kill()


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted((CONFIGS / "variants").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_variants_files_validate(path):
    """The variants files the docs tell users to run parse, and every key is a config key of its model."""
    from recbole_darec.report.validate import validate

    variants = load_variants(path)
    assert variants
    validate(list(variants), "ml-100k", [str(CONFIGS / "ml100k_study.yaml")], {}, variants)
