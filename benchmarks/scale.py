"""How training and validation cost grows with the graph: LightGCNBackbone and DaRecLightGCN on a GENERATED Yelp-like
graph at x1 (yelp's size) and x10 (10x users, items and interactions).

    python benchmarks/scale.py [--scales 1 10] [--device=cpu|cuda] [--threads=N] [--llm-dim=1536] [--steps=N]
                               [--repeats=2] [--models LightGCNBackbone DaRecLightGCN] [--eval-batch-size=N]

Data: GENERATED, not Yelp. One seeded generator for every scale: 11,091 x s users, 11,010 x s items, each user's
activity log-normal (at least 5 interactions, median ~18, mean ~25 as yelp), items drawn by Zipf-like popularity
p ∝ (rank / n_items + 0.02)^-0.75 (top 1% of items ~6% of interactions, top 10% ~34%, as in RLMRec's yelp: 7% and
32%), each user's interactions split 60/20/20 into <ds>.train/valid/test.inter as the RLMRec yelp split is laid
out; every item gets at least one training interaction. The LLM side is GENERATED STAND-IN rows (--llm-dim wide,
random, standin.py; ada-002's 1536 by default) in <ds>.useremb/.itememb. Everything is written into a temporary
folder, never into dataset/. Settings are yelp's (dataset_configs/yelp.yaml: RLMRec protocol, d = 32, batch 4096,
its eval batch) and the models' shipped defaults.

Each (scale, model) is measured in a fresh process, so peak memory is that configuration's alone:
* s/epoch through the project's trainer (``--steps N``: N steps timed and the full epoch extrapolated from s/step);
  each timing is common.timed's median (warm-up + --repeats) unless one call takes over 30 s: then that one call;
* s per full validation pass (RecBole full-sort evaluation through the trainer, embedding cache cleared first so
  the pass includes the one propagation a real validation does);
* DaRec only: the head's forward + backward per step on real batches (propagation excluded);
* peak memory: CPU = peak resident set (VmHWM, reset between phases through /proc/self/clear_refs: everything the
  process holds, torch's allocator included); CUDA = torch.cuda.max_memory_allocated per phase.
Targets (issue): epoch x10/x1 <= 10, validation x10/x1 <= 12, head step flat.
"""
import argparse
import concurrent.futures
import multiprocessing
import re
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from common import ROOT, FirstBatches, environment_header, timed
from standin import write_standin_embeddings

BASE_USERS, BASE_ITEMS = 11_091, 11_010  # RLMRec's yelp
DEGREE_MU, DEGREE_SIGMA, MIN_DEGREE = 2.9, 0.8, 5  # log-normal user activity, mean ~25 (yelp: 25 per user)
ZIPF_A, ZIPF_C = 0.75, 0.02
SPLIT = (0.6, 0.2)  # train, valid; the rest is test
DATASET = "yelpgen"
YELP_CONFIG = str(ROOT / "dataset_configs" / "yelp.yaml")
SLOW_CALL_S = 30  # a call longer than this is timed once, without common.timed's warm-up call


# ----------------------------------------------------------------------------------------------------- generator
def generate(scale, seed=0):
    """(users, items, split) int arrays of a GENERATED graph; split 0/1/2 = train/valid/test."""
    rng = np.random.default_rng(seed)
    n_users, n_items = BASE_USERS * scale, BASE_ITEMS * scale
    degree = np.clip(np.rint(rng.lognormal(DEGREE_MU, DEGREE_SIGMA, n_users)), MIN_DEGREE, n_items // 4).astype(int)
    pop = (np.arange(n_items) / n_items + ZIPF_C) ** -ZIPF_A  # by relative rank: the same shape at every scale
    pop /= pop.sum()
    keys = np.empty(0, np.int64)  # user * n_items + item rank, distinct
    while True:  # draw with replacement, drop repeats, top up the users still short
        short = degree - np.bincount(keys // n_items, minlength=n_users)
        if not short.any():
            break
        users = np.repeat(np.arange(n_users), np.where(short > 0, short + short // 4 + 2, 0))
        keys = np.concatenate([keys, users * n_items + rng.choice(n_items, len(users), p=pop)])
        keys = keys[np.sort(np.unique(keys, return_index=True)[1])]  # first occurrences, in draw order
        keys = keys[np.argsort(keys // n_items, kind="stable")]
        user = keys // n_items
        keys = keys[np.arange(len(keys)) - np.searchsorted(user, user) < degree[user]]  # at most degree[u] each
    user, item = keys // n_items, rng.permutation(n_items)[keys % n_items]  # popularity unrelated to the id
    # per-user split: shuffle each user's items, first 60% train, next 20% valid, rest test (>= 1 each)
    order = np.lexsort((rng.random(len(user)), user))
    user, item = user[order], item[order]
    pos = np.arange(len(user)) - np.searchsorted(user, user)
    d = degree[user]
    n_train = np.rint(d * SPLIT[0]).astype(int)
    n_valid = np.maximum(np.rint(d * SPLIT[1]).astype(int), 1)
    split = np.where(pos < n_train, 0, np.where(pos < n_train + n_valid, 1, 2))
    # an item with no training interaction gets one from a random user (yelp's items all occur in train)
    orphans = np.setdiff1d(np.arange(n_items), item[split == 0])
    user = np.concatenate([user, rng.integers(n_users, size=len(orphans))])
    item = np.concatenate([item, orphans])
    split = np.concatenate([split, np.zeros(len(orphans), int)])
    return user, item, split


def describe(user, item, split):
    train = split == 0
    counts = np.sort(np.bincount(item[train]))[::-1]
    share = [counts[:len(counts) // k].sum() / train.sum() for k in (100, 10)]
    deg = np.bincount(user[train])
    return (f"{user.max() + 1} users, {item.max() + 1} items, interactions train {train.sum()} / valid "
            f"{(split == 1).sum()} / test {(split == 2).sum()}; train degree per user p10/p50/p90/max "
            f"{'/'.join(str(int(x)) for x in np.percentile(deg, [10, 50, 90, 100]))}; top 1% / 10% of items hold "
            f"{share[0]:.0%} / {share[1]:.0%} of training interactions")


def write_inter(folder, user, item, split):
    for code, name in enumerate(("train", "valid", "test")):
        rows = np.stack([user[split == code], item[split == code]], axis=1)
        np.savetxt(folder / f"{DATASET}.{name}.inter", rows, fmt="%d", delimiter="\t",
                   header="user_id:token\titem_id:token", comments="")


# ----------------------------------------------------------------------------------------------------- measuring
class Memory:
    """Peak memory of one phase: resident set on the CPU, allocated tensors on CUDA."""

    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")

    def reset(self):
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            try:  # "5" resets the kernel's peak RSS (VmHWM) of this process (Linux >= 4.0)
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                pass  # then the peak is the process's so far

    def peak_mib(self):
        import torch

        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def time_call(fn, repeats, device):
    """Median seconds of ``fn``: common.timed (one warm-up + repeats) when short, one call when a call is long."""
    first = timed(fn, 1, device, warmup=False)[0]
    return (first, 1) if first > SLOW_CALL_S else (timed(fn, repeats, device)[0], repeats)


def measure(model_name, data_root, device, threads, steps, repeats, eval_batch_size=None):
    """Runs in a fresh process: build, time epoch / validation / head step, peak memory per phase."""
    import warnings

    import torch

    from recbole_darec.config import isolated_config  # leaves this script's own argv alone
    from recbole_darec.single_run import build

    warnings.filterwarnings("ignore", category=FutureWarning)  # RecBole's torch.cuda.amp notice, once per process
    if threads:
        torch.set_num_threads(threads)
    memory, out = Memory(device), {}
    start = time.perf_counter()
    config = isolated_config(model=model_name, dataset=DATASET, config_file_list=[YELP_CONFIG], config_dict={
        "data_path": str(data_root), "state": "ERROR", "show_progress": False, "use_gpu": device == "cuda",
        "gpu_id": "0" if device == "cuda" else "",  # RecBole picks the device from gpu_id, not use_gpu
        **({"eval_batch_size": eval_batch_size} if eval_batch_size else {})})
    _, (train_data, valid_data, _), model, trainer = build(config)
    device = config["device"]
    out["build_s"], out["build_peak_mib"] = time.perf_counter() - start, memory.peak_mib()
    out["batches"] = len(train_data)
    n_steps = min(steps or out["batches"], out["batches"])
    loader = train_data if n_steps == out["batches"] else FirstBatches(train_data, n_steps)
    memory.reset()
    seconds, out["epoch_runs"] = time_call(lambda: trainer._train_epoch(loader, 0), repeats, device)
    out["step_s"], out["steps"] = seconds / n_steps, n_steps
    out["epoch_s"] = out["step_s"] * out["batches"]  # == the measured epoch when n_steps is the whole epoch
    out["train_peak_mib"] = memory.peak_mib()

    def validate():
        model.clear_cache()  # as after a training epoch: the pass includes one propagation
        trainer._valid_epoch(valid_data)

    memory.reset()
    out["valid_s"], out["valid_runs"] = time_call(validate, repeats, device)
    out["valid_peak_mib"] = memory.peak_mib()
    out["valid_users"], out["eval_batches"] = len(valid_data.uid_list), len(valid_data)
    if hasattr(model, "head_loss"):
        out["head_step_s"] = head_step_time(model, train_data, device, repeats)
    return out


def head_step_time(model, train_data, device, repeats, batches=8):
    """Median seconds of the head's forward + backward on real training batches (fixed propagated tables)."""
    model.train()
    batches = [b.to(device) for b in islice(iter(train_data), batches)]
    user_all, item_all = (t.detach().requires_grad_() for t in model.forward())

    def step(batch):
        user_all.grad = item_all.grad = None
        sum(model.head_loss(batch, user_all, item_all).values()).backward()

    step(batches[0])  # warm-up
    times = [timed(lambda: step(batch), 1, device, warmup=False)[0]  # called at once: batch is this iteration's
             for _ in range(max(repeats, 1)) for batch in batches]
    model.zero_grad(set_to_none=True)
    return statistics.median(times)


def in_fresh_process(*args):
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(measure, *args).result()


# ----------------------------------------------------------------------------------------------------- report
def ratio_line(label, small, large, target, scales):
    ratio = large / small
    if target is None or scales[1] != 10 * scales[0]:  # the targets are for x10 vs x1
        return f"ratio x{scales[1]}/x{scales[0]} {label}: {ratio:.2f}"
    verdict = "ok" if ratio <= target else "NOT MET"
    return f"ratio x{scales[1]}/x{scales[0]} {label}: {ratio:.2f} (target <= {target}) {verdict}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--llm-dim", type=int, default=1536, help="width of the stand-in LLM rows")
    parser.add_argument("--steps", type=int, default=None,
                        help="time this many training steps and extrapolate the epoch (default: whole epochs)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["LightGCNBackbone", "DaRecLightGCN"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-batch-size", type=int, default=None,
                        help="scores per validation batch (RecBole counts users x items; default: the project's "
                             "1,048,576, i.e. ~95 users per batch at x1 and ~9 at x10)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(environment_header())
    print(f"data: GENERATED Yelp-like graphs (seed {args.seed}), LLM side: GENERATED STAND-IN {args.llm_dim}-d rows; "
          f"device {args.device}, threads {args.threads or 'default'}, steps {args.steps or 'whole epoch'}, "
          f"repeats {args.repeats}, eval_batch_size {args.eval_batch_size or 'the project default'}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="scale_bench_") as tmp:
        for scale in args.scales:
            folder = Path(tmp) / f"x{scale}" / DATASET
            folder.mkdir(parents=True)
            start = time.perf_counter()
            user, item, split = generate(scale, args.seed)
            made = time.perf_counter()
            write_inter(folder, user, item, split)
            wrote = time.perf_counter()
            write_standin_embeddings(folder, DATASET, range(int(user.max()) + 1), range(int(item.max()) + 1),
                                     args.llm_dim, seed=1)
            size = sum(f.stat().st_size for f in folder.glob(f"{DATASET}.*emb")) / 2**20
            print(f"x{scale} GENERATED: {describe(user, item, split)}\n  generate {made - start:.1f}s, .inter files "
                  f"{wrote - made:.1f}s, stand-in .useremb/.itememb ({size:.0f} MiB) "
                  f"{time.perf_counter() - wrote:.1f}s", flush=True)
        for scale in args.scales:
            for name in args.models:
                r = in_fresh_process(name, Path(tmp) / f"x{scale}", args.device, args.threads, args.steps,
                                     args.repeats, args.eval_batch_size)
                results[scale, name] = r
                partial = "" if r["steps"] == r["batches"] else f" (extrapolated from {r['steps']} steps)"
                head = f", head step {r['head_step_s'] * 1e3:.0f} ms" if "head_step_s" in r else ""
                print(f"x{scale} {name}: build {r['build_s']:.1f}s (peak {r['build_peak_mib']:.0f} MiB); epoch "
                      f"{r['epoch_s']:.1f}s = {r['batches']} x {r['step_s'] * 1e3:.0f} ms/step{partial}, peak "
                      f"{r['train_peak_mib']:.0f} MiB; validation {r['valid_s']:.1f}s ({r['valid_users']} users in "
                      f"{r['eval_batches']} batches, {r['valid_runs']} run(s)), peak {r['valid_peak_mib']:.0f} MiB"
                      f"{head}", flush=True)
    memory = "GPU max_memory_allocated" if args.device == "cuda" else "peak RSS of the measuring process"
    print(f"memory = {memory} per phase (build / training / validation)")
    if len(args.scales) >= 2:
        small, large = args.scales[0], args.scales[-1]
        for name in args.models:
            a, b = results[small, name], results[large, name]
            print(f"{name}: " + "; ".join([
                ratio_line("epoch", a["epoch_s"], b["epoch_s"], 10, (small, large)),
                ratio_line("step", a["step_s"], b["step_s"], None, (small, large)),
                ratio_line("validation", a["valid_s"], b["valid_s"], 12, (small, large))]
                + ([ratio_line("head step", a["head_step_s"], b["head_step_s"], None, (small, large)) + " (flat: ~1)"]
                   if "head_step_s" in a else [])))


if __name__ == "__main__":
    main()
