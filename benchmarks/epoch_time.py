"""Seconds per training epoch and per full validation pass: the plugin's LightGCNBackbone vs RecBole's LightGCN.

    python benchmarks/epoch_time.py [--dataset=yelp] [--repeats=3] [--device=cpu|cuda]

Both models are built in this process on the same data with the same settings (the dataset's config: for yelp the
RLMRec protocol, d = 32, batch 4096; layer mean, no edge dropout, 2 layers), then timed alternately. Target
plugin <= RecBole, i.e. both ratios <= 1.
"""
import argparse

from common import environment_header, timed

from recbole_darec.config import isolated_config  # leaves this script's own argv alone
from recbole_darec.single_run import build


def measure(model_name, dataset, device, repeats):
    config = isolated_config(model=model_name, dataset=dataset, config_dict={
        "state": "ERROR", "n_layers": 2, "use_gpu": device == "cuda", "show_progress": False})
    _, (train_data, valid_data, _), model, trainer = build(config)
    epoch = timed(lambda: trainer._train_epoch(train_data, 0), repeats, config["device"])
    valid = timed(lambda: trainer._valid_epoch(valid_data), repeats, config["device"])
    return epoch, valid, len(train_data)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="yelp")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(environment_header())
    results = {name: measure(name, args.dataset, args.device, args.repeats)
               for name in ("LightGCN", "LightGCNBackbone")}
    print(f"dataset {args.dataset}, {results['LightGCN'][2]} training batches per epoch, median of {args.repeats}")
    print(f"{'model':<18} {'epoch s':>9} {'valid s':>9}")
    for name, ((epoch, _), (valid, _), _) in results.items():
        print(f"{name:<18} {epoch:>9.3f} {valid:>9.3f}")
    (rb_epoch, _), (rb_valid, _), _ = results["LightGCN"]
    (pl_epoch, _), (pl_valid, _), _ = results["LightGCNBackbone"]
    print(f"ratio plugin/RecBole: epoch {pl_epoch / rb_epoch:.2f}, validation {pl_valid / rb_valid:.2f} (target <= 1)")


if __name__ == "__main__":
    main()
