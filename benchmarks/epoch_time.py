"""Seconds per training epoch and per full validation pass: the plugin's LightGCNBackbone vs RecBole's LightGCN.

    python benchmarks/epoch_time.py [--dataset=yelp] [--repeats=3] [--device=cpu|cuda] [--threads=N]

Both models are built in this process on the same data with the same settings (the dataset's config: for yelp the
RLMRec protocol, d = 32, batch 4096; layer mean, no edge dropout, 2 layers), warmed up by one epoch and one
validation pass each, then timed in rounds (each round: one epoch and one validation pass of each model; the median
over rounds), so load on the machine hits both alike. Target plugin <= RecBole, i.e. both ratios <= 1.
"""
import argparse
import statistics

import torch
from common import environment_header, round_robin

from recbole_darec.config import isolated_config  # leaves this script's own argv alone
from recbole_darec.single_run import build


MODELS = ("LightGCN", "LightGCNBackbone")  # RecBole's, the plugin's


def build_model(model_name, dataset, device):
    config = isolated_config(model=model_name, dataset=dataset, config_dict={
        "state": "ERROR", "n_layers": 2, "use_gpu": device == "cuda", "show_progress": False})
    _, (train_data, valid_data, _), _, trainer = build(config)
    trainer._train_epoch(train_data, 0)  # warm-up
    trainer._valid_epoch(valid_data)
    return trainer, train_data, valid_data


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="yelp")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(environment_header())
    built = {name: build_model(name, args.dataset, args.device) for name in MODELS}
    calls = {}
    for name, (trainer, train_data, valid_data) in built.items():
        # epoch index 1 after the warm-up's 0 (RecBole uses it only to label the progress bar)
        calls[(name, "epoch")] = lambda t=trainer, d=train_data: t._train_epoch(d, 1)
        calls[(name, "valid")] = lambda t=trainer, d=valid_data: t._valid_epoch(d)
    seconds = {key: statistics.median(values) for key, values in round_robin(calls, args.repeats, args.device).items()}
    print(f"dataset {args.dataset}, {len(built['LightGCN'][1])} training batches per epoch, median of {args.repeats} rounds")
    print(f"{'model':<18} {'epoch s':>9} {'valid s':>9}")
    for name in MODELS:
        print(f"{name:<18} {seconds[(name, 'epoch')]:>9.3f} {seconds[(name, 'valid')]:>9.3f}")
    rb_epoch, rb_valid = seconds[("LightGCN", "epoch")], seconds[("LightGCN", "valid")]
    pl_epoch, pl_valid = seconds[("LightGCNBackbone", "epoch")], seconds[("LightGCNBackbone", "valid")]
    print(f"ratio plugin/RecBole: epoch {pl_epoch / rb_epoch:.2f}, validation {pl_valid / rb_valid:.2f} (target <= 1)")


if __name__ == "__main__":
    main()
