"""A few training epochs of one model: seconds, each loss term (summed over the epoch's batches) per epoch, a
model-agnostic BPR probe (mean -log sigmoid(score(u, pos) - score(u, neg)) of the scoring embeddings over 5 fixed
training batches, in eval mode: comparable across models whatever their loss reports), and the validation metrics
after the last epoch -- the quick check that a backbone learns and how fast.

    python benchmarks/learning_curve.py --model=SGLBackbone --dataset=yelp --epochs=3 \
        --config_files=configs/rlmrec/SGLBackbone-yelp.yaml [--threads=1] [--key=value ...]

``--key=value`` pairs override the config (values parsed as YAML). Models learn from the same seed and data as a
``run_recbole_darec.py`` run with the same configuration, so the numbers are comparable across models.
"""
import argparse
import random
import time

import yaml
from common import environment_header

from recbole_darec.config import isolated_config  # leaves this script's own argv alone
from recbole_darec.single_run import build


def parse_overrides(extra):
    overrides = {}
    for item in extra:
        key, sep, value = item.lstrip("-").partition("=")
        if not sep:
            raise SystemExit(f"expected --key=value, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def fixed_batches(train_data, count):
    """The first ``count`` training batches, drawn without moving any random state the training run uses."""
    import numpy as np
    import torch

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    batches = []
    for batch in train_data:
        batches.append(batch)
        if len(batches) == count:
            break
    random.setstate(states[0]), np.random.set_state(states[1]), torch.set_rng_state(states[2])
    return batches


def bpr_probe(model, batches):
    import torch
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        values = [F.softplus(model.predict(_as_negative(model, b)) - model.predict(b)).mean() for b in batches]
    return float(torch.stack(values).mean())


def _as_negative(model, batch):
    from recbole.data.interaction import Interaction

    return Interaction({**batch.interaction, model.ITEM_ID: batch[model.NEG_ITEM_ID]})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="yelp")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--config_files", default=None, help="space-separated YAML files")
    parser.add_argument("--digest", action="store_true",
                        help="also print exact losses and a SHA-256 of the trained weights (bit-identity checks)")
    args, extra = parser.parse_known_args()
    import torch

    torch.set_num_threads(args.threads)
    files = args.config_files.split() if args.config_files else None
    config = isolated_config(model=args.model, dataset=args.dataset, config_file_list=files,
                    config_dict={"state": "ERROR", "show_progress": False, **parse_overrides(extra)})
    print(environment_header())
    _, (train_data, valid_data, _), model, trainer = build(config)
    names = getattr(model, "loss_names", None) or ("loss",)
    probe = fixed_batches(train_data, 5)
    print(f"{args.model} on {args.dataset}: {len(train_data)} batches per epoch")
    for epoch in range(args.epochs):
        start = time.perf_counter()
        losses = trainer._train_epoch(train_data, epoch)
        seconds = time.perf_counter() - start
        losses = losses if isinstance(losses, tuple) else (losses,)
        terms = ", ".join(f"{n} {float(v):.4f}" for n, v in zip(names, losses))
        print(f"epoch {epoch}: {seconds:.2f} s, {terms}, bpr probe {bpr_probe(model, probe):.4f}")
        if args.digest:
            print(f"  exact losses {[float(v) for v in losses]!r}")
    if args.digest:
        import hashlib

        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            if tensor is not None and hasattr(tensor, "numpy"):
                digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        print(f"weights sha256 {digest.hexdigest()[:16]}")
    start = time.perf_counter()
    _, result = trainer._valid_epoch(valid_data)
    print(f"valid after {args.epochs} epochs ({time.perf_counter() - start:.2f} s): "
          + ", ".join(f"{k} {float(v):.4f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
