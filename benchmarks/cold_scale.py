"""Measure the cold_scale rules on validation under eval_protocol cold_items. The rule changes no training step;
it only decides where cold items fall among warm ones in the all ranking (and so which epoch early stopping keeps),
so one trained checkpoint is evaluated under each rule. Prints the machine and versions, then one JSON line per run.

    # train once per (model, seed), then evaluate the best checkpoint's validation split under each rule
    python benchmarks/cold_scale.py --dataset=amazon-scientific --models=DaRecLightGCN,RLMRecConLightGCN --seeds=2020
    # or evaluate the checkpoints a comparison saved (run_compare.py ... --eval_protocol=cold_items)
    python benchmarks/cold_scale.py --runs=docs/compare-amazon-scientific-cold/runs.jsonl
"""
import argparse
import json
import sys
from pathlib import Path

from common import environment_header

from recbole_darec import Config
from recbole_darec.model.composed.cold_scale import SCALE_RULES
from recbole_darec.report.records import resolve_path
from recbole_darec.single_run import build, reload

KEYS = ("recall@20", "ndcg@20", "warm_recall@20", "warm_ndcg@20", "cold_recall@20", "cold_slots@20", "cold_users@20")


def rule_results(trainer, model, valid_data, load_best):
    out = {}
    for i, rule in enumerate(SCALE_RULES):
        model.cold_scale_rule = rule
        result = trainer.evaluate(valid_data, load_best_model=load_best and i == 0)  # best-validation weights
        out[rule] = {k: result[k] for k in KEYS}
    return out


def train_and_measure(opts):
    for model_name in opts.models.split(","):
        for seed in map(int, opts.seeds.split(",")):
            config = Config(model=model_name, dataset=opts.dataset, config_dict={
                "eval_protocol": "cold_items", "seed": seed, "state": "WARNING", "show_progress": False,
                "checkpoint_dir": opts.checkpoint_dir})
            _, (train_data, valid_data, _), model, trainer = build(config)
            trainer.fit(train_data, valid_data, verbose=False, saved=True)
            row = {"model": model_name, "seed": seed, "dataset": opts.dataset, "epochs": len(trainer.valid_history),
                   **rule_results(trainer, model, valid_data, load_best=True)}
            print(json.dumps(row), flush=True)


def measure_runs(opts):
    with open(opts.runs, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    for record in records:
        if not record.get("checkpoint") or record["model"] not in opts.models.split(","):
            continue
        path = resolve_path(record["checkpoint"], Path(opts.runs).parent)
        _, _, (_, (_, valid_data, _), model, trainer) = reload(str(path), {"state": "WARNING"})
        row = {"model": record["model"], "seed": record["seed"], "dataset": record["dataset"],
               "trained_with": getattr(model, "cold_scale_rule", None), **rule_results(trainer, model, valid_data, load_best=False)}
        print(json.dumps(row), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset")
    parser.add_argument("--models", default="DaRecLightGCN,RLMRecConLightGCN")
    parser.add_argument("--seeds", default="2020")
    parser.add_argument("--checkpoint_dir", default="saved/cold-scale")
    parser.add_argument("--runs", help="a comparison's runs.jsonl: measure its saved checkpoints")
    opts = parser.parse_args()
    print(environment_header(), flush=True)
    sys.argv = sys.argv[:1]  # RecBole's Config reads the command line too
    measure_runs(opts) if opts.runs else train_and_measure(opts)


if __name__ == "__main__":
    main()
