"""User errors in every command line: one line naming the culprit, exit status 2, nothing written.

Each bad input is tried in a fresh temporary folder (the working directory, so RecBole's log/, log_tensorboard/
and saved/ would land there) with a private copy of ml-100k as the dataset folder.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import recbole_darec  # noqa: F401  (compat shims)
from recbole_darec.cli_errors import run_cli

REPO = Path(__file__).resolve().parents[1]


def snapshot(*folders):
    """{path: (size, mtime)} of every file and {path: None} of every folder under the folders."""
    return {p: None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for f in folders for p in Path(f).rglob("*")}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory with a private ml-100k under ``data/``."""
    data = tmp_path / "data" / "ml-100k"
    shutil.copytree(REPO / "dataset" / "ml-100k", data,
                    ignore=shutil.ignore_patterns("*.semantic*", "*emb", "*.jsonl", ".*"))
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    return tmp_path


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def crafted(path, **fields):
    torch.save({"model": "LightGCNBackbone", "dataset": "ml-100k", "epoch": 0, "seed": 2020, "state_dict": {},
                "config_overrides": {}, **fields}, path)
    return path


def training_cli(argv):
    from run_recbole_darec import main

    return run_cli(main, "run_recbole_darec.py", argv)


def semantic_cli(argv):
    from recbole_darec.semantic.__main__ import main

    return run_cli(main, "python -m recbole_darec.semantic", argv)


def hyper_cli(argv):
    from recbole_darec.tune.cli import main

    return run_cli(main, "run_hyper.py", argv)


def compare_cli(argv):
    from recbole_darec.report.cli import main

    return run_cli(main, "run_compare.py", argv)


def rlmrec_cli(argv):
    from recbole_darec.data.convert_rlmrec import main  # the converters run run_cli themselves

    return main(argv)


def unisrec_cli(argv):
    from recbole_darec.data.convert_unisrec import main

    return main(argv)


sys.path.insert(0, str(REPO))  # run_recbole_darec.py lives at the repository root
BASE = ["--model=LightGCNBackbone", "--dataset=ml-100k", "--state=WARNING"]

# (name, CLI, argv builder given the temp folder, files to create first, text the one line must contain)
CASES = [
    ("key typo", training_cli, lambda t: BASE + ["--learning_rte=0.01"], {},
     ["'learning_rte'", "did you mean learning_rate"]),
    ("darec key typo", training_cli, lambda t: BASE[1:] + ["--model=DaRecLightGCN", "--darec_lamda=0.1"], {},
     ["'darec_lamda'", "darec_lambda"]),
    ("epochs 0", training_cli, lambda t: BASE + ["--epochs=0"], {}, ["epochs=0"]),
    ("epochs -1", training_cli, lambda t: BASE + ["--epochs=-1"], {}, ["epochs=-1"]),
    ("epochs not a number", training_cli, lambda t: BASE + ["--epochs=ten"], {}, ["epochs='ten'"]),
    ("word for a number", training_cli, lambda t: BASE + ["--train_batch_size=4k"], {},
     ["train_batch_size='4k'", "a number"]),
    ("word for a boolean", training_cli, lambda t: BASE + ["--reproducibility=yes"], {},
     ["reproducibility='yes'", "True or False"]),
    ("eval batch 0", training_cli, lambda t: BASE + ["--eval_batch_size=0"], {}, ["eval_batch_size=0", "> 0"]),
    ("embedding size 0", training_cli, lambda t: BASE + ["--embedding_size=0"], {}, ["embedding_size=0"]),
    ("negative learning rate", training_cli, lambda t: BASE + ["--learning_rate=-0.1"], {},
     ["learning_rate=-0.1", ">= 0"]),
    ("negative weight decay", training_cli, lambda t: BASE + ["--weight_decay=-1"], {}, ["weight_decay=-1"]),
    ("negative seed", training_cli, lambda t: BASE + ["--seed=-1"], {}, ["seed=-1"]),
    ("seed past 2**32", training_cli, lambda t: BASE + ["--seed=4294967296"], {}, ["seed=4294967296"]),
    ("model name a path", training_cli, lambda t: ["--model=../../x", "--dataset=ml-100k"], {},
     ["'../../x'", "LightGCNBackbone"]),
    ("model name a module", training_cli, lambda t: ["--model=os.system", "--dataset=ml-100k"], {},
     ["'os.system'", "DaRecLightGCN"]),
    ("dataset given as a path", training_cli, lambda t: ["--model=BPR", f"--dataset={t}/data/ml-100k"], {},
     ["/data/ml-100k' is a path", "--dataset=ml-100k --data_path="]),
    ("optimizer typo", training_cli, lambda t: BASE + ["--learner=adamm"], {}, ["learner=adamm", "adam"]),
    ("bad protocol", training_cli, lambda t: BASE + ["--eval_protocol=foo"], {}, ["eval_protocol", "'foo'"]),
    ("bad SGL view", training_cli, lambda t: BASE[1:] + ["--model=SGLBackbone", "--sgl_view_type=XX"], {},
     ["sgl_view_type", "'XX'"]),
    ("DaRec without backbone", training_cli, lambda t: BASE[1:] + ["--model=DaRec"], {}, ["backbone"]),
    ("encoder not found", training_cli,
     lambda t: BASE[1:] + ["--model=DaRecLightGCN", f"--data_path={t}/data", f"--semantic_encoder={t}/no-encoder"],
     {}, ["semantic_encoder=", "no-encoder"]),
    ("valid_metric not evaluated", training_cli, lambda t: BASE + ["--valid_metric=Recall@50"], {},
     ["valid_metric=Recall@50", "recall@20"]),
    ("unknown metric", training_cli, lambda t: BASE + ["--metrics=['Recal']"], {}, ["'Recal'"]),
    ("topk 0", training_cli, lambda t: BASE + ["--topk=0"], {}, ["topk", "`0`"]),
    ("key given twice", training_cli, lambda t: BASE + ["--epochs=2", "--epochs=3"], {}, ["--epochs=3"]),
    ("K > N", training_cli, lambda t: BASE[1:] + ["--model=DaRecLightGCN", "--darec_k=9", "--darec_sample_size=8"],
     {}, ["darec_k=9", "darec_sample_size=8"]),
    ("missing config file", training_cli, lambda t: BASE + [f"--config_files={t}/nope.yaml"], {}, ["nope.yaml"]),
    ("YAML syntax error", training_cli, lambda t: BASE + [f"--config_files={t}/bad.yaml"],
     {"bad.yaml": "epochs: [1, 2\nlearning_rate: 0.1\n"}, ["bad.yaml", "line"]),
    ("YAML not a mapping", training_cli, lambda t: BASE + [f"--config_files={t}/list.yaml"],
     {"list.yaml": "- epochs\n"}, ["list.yaml"]),
    ("unknown key in a YAML", training_cli, lambda t: BASE + [f"--config_files={t}/typo.yaml"],
     {"typo.yaml": "embeding_size: 8\n"}, ["embeding_size", "typo.yaml"]),
    ("unknown model", training_cli, lambda t: ["--model=LightGNC", "--dataset=ml-100k"], {}, ["LightGNC"]),
    ("unknown dataset", training_cli, lambda t: ["--model=BPR", "--dataset=nosuch", f"--data_path={t}/data"], {},
     ["nosuch"]),
    ("missing checkpoint", training_cli, lambda t: BASE + [f"--resume_from={t}/none.pth"], {}, ["none.pth"]),
    ("text file as checkpoint", training_cli, lambda t: BASE + [f"--resume_from={t}/text.pth"],
     {"text.pth": "hello"}, ["text.pth", "not a readable"]),
    ("empty checkpoint", training_cli, lambda t: BASE + [f"--resume_from={t}/empty.pth"], {"empty.pth": ""},
     ["empty.pth"]),
    ("checkpoint of another dataset", training_cli, lambda t: BASE + [f"--resume_from={t}/yelp.pth"],
     {"yelp.pth": lambda p: crafted(p, dataset="yelp")}, ["yelp.pth", "dataset yelp", "dataset ml-100k"]),
    ("checkpoint of another model", training_cli, lambda t: BASE + [f"--resume_from={t}/bpr.pth"],
     {"bpr.pth": lambda p: crafted(p, model="BPR")}, ["bpr.pth", "model BPR"]),
    ("pickled object checkpoint", training_cli, lambda t: BASE + [f"--resume_from={t}/obj.pth"],
     {"obj.pth": lambda p: torch.save({"x": Path("/")}, p)}, ["obj.pth", "could run code"]),
    ("inter header without type", training_cli, lambda t: BASE + [f"--data_path={t}/data"],
     {"data/ml-100k/ml-100k.inter": "user_id\titem_id\trating\ttimestamp\n1\t2\t3\t4\n"},
     ["ml-100k.inter", "user_id"]),
    ("empty item profile file", training_cli,
     lambda t: BASE[1:] + ["--model=DaRecLightGCN", f"--data_path={t}/data"],
     {"data/ml-100k/ml-100k.itemprofile.jsonl": ""}, ["ml-100k.itemprofile.jsonl", "empty"]),
    ("semantic: unknown key", semantic_cli, lambda t: ["--dataset=ml-100k", f"--data_path={t}/data", "--sed=7"], {},
     ["'sed'", "seed"]),
    ("semantic: inter header without type", semantic_cli, lambda t: ["--dataset=ml-100k", f"--data_path={t}/data"],
     {"data/ml-100k/ml-100k.inter": "user_id\titem_id\n1\t2\n"}, ["ml-100k.inter", "user_id"]),
    ("semantic: empty item profile file", semantic_cli, lambda t: ["--dataset=ml-100k", f"--data_path={t}/data"],
     {"data/ml-100k/ml-100k.itemprofile.jsonl": ""}, ["ml-100k.itemprofile.jsonl", "empty"]),
    ("semantic: unknown dataset", semantic_cli, lambda t: ["--dataset=nosuch", f"--data_path={t}/data"], {},
     ["nosuch"]),
    ("hyper: override typo", hyper_cli,
     lambda t: ["--model=BPR", "--dataset=ml-100k", f"--space={REPO}/hyper/lightgcn.yaml", "--lerning_rate=0.1"], {},
     ["lerning_rate"]),
    ("hyper: YAML syntax error", hyper_cli,
     lambda t: ["--model=BPR", "--dataset=ml-100k", f"--space={REPO}/hyper/lightgcn.yaml",
                f"--config_files={t}/bad.yaml"], {"bad.yaml": "epochs: [1\n"}, ["bad.yaml"]),
    ("hyper: search space YAML error", hyper_cli,
     lambda t: ["--model=BPR", "--dataset=ml-100k", f"--space={t}/space.yaml"], {"space.yaml": "lr: [1\n"},
     ["space.yaml line 2", "not valid YAML"]),
    ("compare: variants YAML error", compare_cli,
     lambda t: ["--dataset=ml-100k", f"--variants={t}/variants.yaml", f"--out={t}/out"],
     {"variants.yaml": "a: {model: [\n"}, ["variants.yaml line 2", "not valid YAML"]),
    ("compare: --out is a file", compare_cli,
     lambda t: ["--dataset=ml-100k", "--models=BPR", f"--out={t}/data/ml-100k/ml-100k.item", "--epochs=1"], {},
     ["--out", "ml-100k.item", "is a file"]),
    ("compare: unknown model", compare_cli, lambda t: ["--dataset=ml-100k", "--models=LightGNC", f"--out={t}/out"],
     {}, ["LightGNC"]),
    ("compare: YAML syntax error", compare_cli,
     lambda t: ["--dataset=ml-100k", "--models=BPR", f"--out={t}/out", f"--config_files={t}/bad.yaml"],
     {"bad.yaml": "epochs: [1\n"}, ["bad.yaml"]),
    ("compare: epochs 0", compare_cli, lambda t: ["--dataset=ml-100k", "--models=BPR", f"--out={t}/out", "--epochs=0"],
     {}, ["epochs=0"]),
    ("convert_rlmrec: split missing", rlmrec_cli, lambda t: [f"{t}/src", "toy", f"--out-dir={t}/out"],
     {"src/usr_emb_np.pkl": ""}, ["convert_rlmrec: error:", "src/trn_mat.pkl", "missing"]),
    ("convert_unisrec: file missing", unisrec_cli, lambda t: [f"{t}/src", "sci", f"--out-dir={t}/out"],
     {"src/Scientific.text": ""}, ["convert_unisrec: error:", "src/Scientific"]),
]


@pytest.mark.parametrize("name, cli, argv, files, needles", CASES, ids=[c[0] for c in CASES])
def test_user_error_is_one_line_exit_2_and_writes_nothing(workdir, capsys, name, cli, argv, files, needles):
    for rel, content in files.items():
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        content(path) if callable(content) else write(path, content)
    before = snapshot(workdir)
    assert cli(argv(workdir)) == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if "Warning" not in line and "warn(" not in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert snapshot(workdir) == before  # nothing created or changed: dataset, log/, saved/, outputs


def test_debug_shows_the_traceback(workdir):
    """The real entry point: one line by default; --debug and RECBOLE_DAREC_DEBUG=1 give the traceback."""
    cmd = [sys.executable, str(REPO / "run_recbole_darec.py")] + BASE + ["--learning_rte=0.01"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("RECBOLE_DAREC_DEBUG", None)
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "learning_rte" in plain.stderr
    debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=300, env=env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "UserError" in debug.stderr
    env_debug = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                               env={**env, "RECBOLE_DAREC_DEBUG": "1"})
    assert "Traceback" in env_debug.stderr
    assert not list(Path.cwd().iterdir())  # nothing written


def test_every_cli_error_type_is_a_user_error_and_the_handler_imports_nothing_above_it():
    """The CLIs' one error handler stands at the ground floor: the layers' own error types derive from UserError,
    so cli_errors.py needs no import of the layers above it (it used to import three of them, closing a circle)."""
    import ast

    from recbole_darec.cli_errors import UserError
    from recbole_darec.report.errors import CompareError
    from recbole_darec.tune.runner import SweepError
    from recbole_darec.tune.space import SearchSpaceError

    assert all(issubclass(kind, UserError) for kind in (CompareError, SweepError, SearchSpaceError))
    tree = ast.parse((REPO / "recbole_darec" / "cli_errors.py").read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name and name.startswith("recbole_darec")]
