"""Measure the cold_scale rules on validation: train once per (model, seed) under eval_protocol cold_items, then
evaluate the best checkpoint's validation split under each rule (the rule changes no training step; it only
decides where cold items fall among warm ones in the all ranking).

    python benchmarks/cold_scale.py --dataset=amazon-scientific --models=DaRecLightGCN,RLMRecConLightGCN --seeds=2020
"""
import argparse
import json
import sys

from recbole_darec import Config
from recbole_darec.model.composed.cold_scale import SCALE_RULES
from recbole_darec.single_run import build

KEYS = ("recall@20", "ndcg@20", "warm_recall@20", "warm_ndcg@20", "cold_recall@20", "cold_slots@20", "cold_users@20")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--seeds", default="2020")
    parser.add_argument("--checkpoint_dir", default="saved/cold-scale")
    opts = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config reads the command line too
    for model_name in opts.models.split(","):
        for seed in map(int, opts.seeds.split(",")):
            config = Config(model=model_name, dataset=opts.dataset, config_dict={
                "eval_protocol": "cold_items", "seed": seed, "state": "WARNING", "show_progress": False,
                "checkpoint_dir": opts.checkpoint_dir})
            _, (train_data, valid_data, _), model, trainer = build(config)
            trainer.fit(train_data, valid_data, verbose=False, saved=True)
            row = {"model": model_name, "seed": seed, "dataset": opts.dataset, "epochs": len(trainer.valid_history)}
            for i, rule in enumerate(SCALE_RULES):
                model.cold_scale_rule = rule
                result = trainer.evaluate(valid_data, load_best_model=i == 0)  # best-validation weights
                row[rule] = {k: result[k] for k in KEYS}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
