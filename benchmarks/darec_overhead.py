"""Cost of the DaRec head: per-epoch time of DaRecLightGCN vs the plugin's LightGCNBackbone, and the head's time per
step as the graph grows 10x with N̂ fixed.

    python benchmarks/darec_overhead.py [--dataset=yelp] [--repeats=3] [--device=cpu|cuda] [--llm-dim=1536] [--threads=N]

Part 1 uses the real yelp split (RLMRec protocol settings) with GENERATED STAND-IN LLM embeddings (random
N x 1536 float32 rows, the shape of RLMRec's ada-002 files -- not real profiles: only the cost is measured here).
They are written once into a temporary copy of the dataset, never into dataset/. Target: ratio <= 1.25.
Variants: the defaults; ``semantic_pca_dim: 128`` (the LLM tables reduced once to 128 principal directions, so
the LLM-side projectors are 128 -> 80 -> 32 instead of 1536 -> 784 -> 32); and that plus K-means warm-started from
the previous step's centres with 3 Lloyd iterations instead of 10 fresh ones.
Part 2 times one step of the head alone (Ω sampling, row gathers, projections, the four terms, backward) on random
tables of 1x and 10x yelp's size with the same batch and N̂ (the models' defaults), and once more at 1x with 128-d
LLM rows, which shows how much of the step the wide LLM-side projectors take. Target: ratio ~1 (cost independent
of |V|).
"""
import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from common import environment_header, timed

from recbole_darec import Config
from recbole_darec.config import DATASET_DIR
from recbole_darec.model.alignment import DaRecHead
from recbole_darec.single_run import build

# the head's sizes in part 2 follow the models' defaults (N̂, regulariser sub-sample)
MODEL_DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[1] / "properties/model/DaRecMixin.yaml").read_text())


def standin_dataset(root, dataset, llm_dim, seed=0):
    """Copy the dataset's .inter files to ``root`` and add random (stand-in) .useremb/.itememb files."""
    src, dst = DATASET_DIR / dataset, Path(root) / dataset
    dst.mkdir(parents=True)
    for f in src.glob(f"{dataset}*.inter"):
        shutil.copy(f, dst / f.name)
    rng = np.random.default_rng(seed)
    for side, id_col, emb_col, ext in (("user", "uid", "user_emb", "useremb"), ("item", "iid", "item_emb", "itememb")):
        tokens = set()
        for f in dst.glob(f"{dataset}*.inter"):
            column = 0 if side == "user" else 1
            tokens |= {line.split("\t")[column] for line in f.read_text().splitlines()[1:]}
        with open(dst / f"{dataset}.{ext}", "w") as fh:
            fh.write(f"{id_col}:token\t{emb_col}:float_seq\n")
            for token in sorted(tokens, key=int):
                fh.write(token + "\t" + " ".join(f"{x:.5f}" for x in rng.standard_normal(llm_dim)) + "\n")


VARIANTS = (  # (label, model, overrides): the baseline first
    ("LightGCNBackbone", "LightGCNBackbone", {}),
    ("DaRecLightGCN", "DaRecLightGCN", {}),
    ("DaRecLightGCN pca128", "DaRecLightGCN", {"semantic_pca_dim": 128}),
    ("DaRecLightGCN pca128 warm3", "DaRecLightGCN", {"semantic_pca_dim": 128, "darec_kmeans_init": "warm",
                                                    "darec_kmeans_iters": 3}),
)


def epoch_times(data_root, dataset, device, repeats):
    times = {}
    for label, name, overrides in VARIANTS:
        config = Config(model=name, dataset=dataset, config_dict={
            "state": "ERROR", "data_path": str(data_root), "use_gpu": device == "cuda", "show_progress": False,
            **overrides})
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        _, (train_data, *_), model, trainer = build(config)
        times[label] = timed(lambda: trainer._train_epoch(train_data, 0), repeats, config["device"])[0]
        tables = sum(b.numel() * b.element_size() for n, b in model.named_buffers() if n.endswith("_semantic"))
        memory = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device == "cuda" else ""
        print(f"  {label}: epoch {times[label]:.3f}s, LLM tables {tables / 2**20:.1f} MiB{memory}")
        del model, trainer, train_data
    return times


def head_step_time(n_users, n_items, llm_dim, device, repeats, batch=4096, d=32):
    gen = torch.Generator().manual_seed(0)
    user_table = torch.randn(n_users, d, generator=gen).to(device).requires_grad_()
    item_table = torch.randn(n_items, d, generator=gen).to(device).requires_grad_()
    user_llm = torch.randn(n_users, llm_dim, generator=gen).to(device)
    item_llm = torch.randn(n_items, llm_dim, generator=gen).to(device)
    users = torch.randint(n_users, (batch,), generator=gen).to(device)
    items = torch.randint(n_items, (batch,), generator=gen).to(device)
    head = DaRecHead(d, llm_dim, sample_size=MODEL_DEFAULTS["darec_sample_size"],
                     reg_sample=MODEL_DEFAULTS["darec_reg_sample"]).to(device)

    def step():
        u, i = DaRecHead.sample_nodes(users, items, head.sample_size)
        terms = head(torch.cat([user_table[u], item_table[i]]), torch.cat([user_llm[u], item_llm[i]]))
        sum(terms.values()).backward()

    return timed(step, repeats, device)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="yelp")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--llm-dim", type=int, default=1536)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(environment_header())
    print(f"LLM side: GENERATED STAND-IN embeddings ({args.llm_dim}-d random rows), cost measurement only")
    with tempfile.TemporaryDirectory() as root:
        standin_dataset(root, args.dataset, args.llm_dim)
        times = epoch_times(root, args.dataset, args.device, args.repeats)
    base = times["LightGCNBackbone"]
    for label, seconds in times.items():
        if label != "LightGCNBackbone":
            print(f"part 1, {args.dataset}: {label} / LightGCNBackbone epoch ratio {seconds / base:.2f} "
                  f"({seconds:.3f}s / {base:.3f}s; target <= 1.25)")
    n_hat, n_reg = MODEL_DEFAULTS["darec_sample_size"], MODEL_DEFAULTS["darec_reg_sample"]
    small = head_step_time(11_091, 11_010, args.llm_dim, args.device, args.repeats)
    large = head_step_time(110_910, 110_100, args.llm_dim, args.device, args.repeats)
    narrow = head_step_time(11_091, 11_010, 128, args.device, args.repeats)  # what the LLM-side width costs
    print(f"part 2, head step (batch 4096, N̂ {n_hat}, regulariser rows {n_reg}): 1x yelp {small * 1e3:.1f} ms, "
          f"10x yelp {large * 1e3:.1f} ms, ratio {large / small:.2f} (target ~1); "
          f"1x yelp with 128-d LLM rows {narrow * 1e3:.1f} ms ({narrow / small:.2f} of the {args.llm_dim}-d step)")


if __name__ == "__main__":
    main()
