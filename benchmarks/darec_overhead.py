"""Cost of the alignment heads: per-epoch time of DaRecLightGCN and RLMRecConLightGCN vs the plugin's
LightGCNBackbone, and the DaRec head's time per step as the graph grows 10x with N̂ fixed.

    python benchmarks/darec_overhead.py [--datasets=yelp,ml-100k] [--repeats=3] [--device=cpu|cuda]
        [--llm-dim=1536] [--threads=N] [--darec-set=KEY=VALUE,... ...] [--rlmrec-set=KEY=VALUE,... ...]

Part 1, per dataset, every model built first and then timed in rounds (one epoch of each model per round, the
median over rounds), so load on the machine hits all of them alike. Target: ratio <= 1.25.
* yelp: the real RLMRec split with GENERATED STAND-IN LLM embeddings (random N x 1536 rows from standin.py, the
  shape of RLMRec's ada-002 files -- not real profiles: only the cost is measured), written into a temporary copy of
  the dataset, never into dataset/.
* ml-100k: the shipped real 384-d MiniLM profile tables, settings of configs/ml100k_study.yaml.
Each head is timed with its LLM rows at full width (``semantic_pca_dim: ~``) and reduced once to DaRec's default
number of principal directions (not whitened); the line marked * is the head's shipped default. Each ``--darec-set``
(repeatable) adds one more DaRec row: the shipped default with those keys changed (a candidate default, timed in the
same rounds), e.g. ``--darec-set=head_interval=8`` (the head on every 8th step); ``--rlmrec-set`` does the same
for RLMRec-Con. On CUDA the shipped DaRec row is timed once more with its K-means on the path without host waits
(``kmeans(sync_free=True)``, a candidate GPU default), and so is part 2's 1x head step.
Part 2 times one step of the DaRec head alone (Ω sampling, row gathers, projections, the four terms, backward) on
random tables of 1x and 10x yelp's size with the same batch and N̂ (the models' defaults), and once more at 1x with
128-d LLM rows, which shows how much of the step the wide LLM-side projectors take. Target: ratio ~1 (cost
independent of |V|).
"""
import argparse
import contextlib
import functools
import shutil
import statistics
import tempfile
from pathlib import Path

import torch
import yaml
from common import ROOT, environment_header, round_robin, timed
from standin import write_standin_embeddings

from recbole_darec.config import isolated_config  # leaves this script's own argv alone
from recbole_darec.data.sources import locate
from recbole_darec.model.alignment import DaRecHead
from recbole_darec.model.alignment import losses as alignment_losses
from recbole_darec.report.cli import parse_overrides
from recbole_darec.report.errors import CompareError
from recbole_darec.single_run import build

PROPERTIES = ROOT / "properties/model"
SEMANTIC_DEFAULTS = yaml.safe_load((PROPERTIES / "SemanticMixin.yaml").read_text())
DAREC_DEFAULTS = yaml.safe_load((PROPERTIES / "DaRecMixin.yaml").read_text())  # also part 2's N̂ and reg sample
BASELINE = "LightGCNBackbone"
SYNC_FREE = "K-means without host waits"


@contextlib.contextmanager
def kmeans_without_host_waits(active=True):
    """The head's K-means on its path without host waits (``sync_free=True``: every Lloyd iteration runs, empties
    re-seeded by mask, k-means++ draws kept on the device), the candidate GPU default, timed beside the shipped
    path (early stop, empties re-seeded in a Python loop, each draw read back) on CUDA."""
    original = alignment_losses.kmeans
    if active:
        alignment_losses.kmeans = functools.partial(original, sync_free=True)
    try:
        yield
    finally:
        alignment_losses.kmeans = original


def standin_dataset(root, dataset, llm_dim, seed=0):
    """Copy the dataset's .inter files to ``root`` and add random (stand-in) .useremb/.itememb files."""
    src, dst = locate(dataset) / dataset, Path(root) / dataset  # dataset/, or converted from the shared data
    dst.mkdir(parents=True)
    for f in src.glob(f"{dataset}*.inter"):
        shutil.copy(f, dst / f.name)
    ids = ([], [])  # the user and item tokens of every split
    for f in dst.glob(f"{dataset}*.inter"):
        for column, found in enumerate(ids):
            found += [line.split("\t")[column] for line in f.read_text().splitlines()[1:]]
    user_ids, item_ids = (sorted(set(found), key=int) for found in ids)
    write_standin_embeddings(dst, dataset, user_ids, item_ids, llm_dim, seed)


def variants(darec_sets=(), device="cpu", rlmrec_sets=()):
    """(label, model, overrides, K-means without host waits?), the baseline first: each head at full width and with DaRec's
    default reduction of the LLM tables; '*' marks the head's shipped default (RLMRec keeps full width, DaRec
    reduces). On CUDA the shipped default once more with its K-means without host waits (a candidate)."""
    dim = DAREC_DEFAULTS.get("semantic_pca_dim") or 128
    widths = {"full width": {"semantic_pca_dim": None},
              f"pca{dim}": {"semantic_pca_dim": dim, "semantic_pca_whiten": False}}
    shipped = {"DaRecLightGCN": {**SEMANTIC_DEFAULTS, **DAREC_DEFAULTS}, "RLMRecConLightGCN": SEMANTIC_DEFAULTS}
    rows = [(BASELINE, BASELINE, {}, False)]
    for model, defaults in shipped.items():
        for width, overrides in widths.items():
            default = defaults.get("semantic_pca_dim") == overrides["semantic_pca_dim"]
            rows.append((f"{model} {width}{' *' if default else ''}", model, overrides, False))
            if default and model == "DaRecLightGCN" and device == "cuda":
                rows.append((f"{model} {width} * with {SYNC_FREE}", model, overrides, True))
    for model, candidates in (("DaRecLightGCN", darec_sets), ("RLMRecConLightGCN", rlmrec_sets)):
        for candidate in candidates:
            changed = " ".join(f"{key}={value}" for key, value in candidate.items())
            rows.append((f"{model} default + {changed}", model, dict(candidate), False))
    return rows


def parse_candidate(text, flag, known):
    """``KEY=VALUE,...`` -> dict, values read as run_compare reads ``--key=value`` (numbers first: YAML would read
    1e-3 as text); only the ``known`` keys (those the flag's model declares) are accepted."""
    items = [part.strip() for part in (text or "").split(",") if part.strip()]
    try:
        pairs = parse_overrides([f"--{item}" for item in items])
    except CompareError as exc:
        raise SystemExit(f"{flag}: {exc}") from None
    unknown = sorted(set(pairs) - known)
    if unknown:
        raise SystemExit(f"{flag}: {', '.join(unknown)} not keys of that model (known: {', '.join(sorted(known))})")
    return pairs


def epoch_times(dataset, device, repeats, data_root=None, config_files=(), darec_sets=(), rlmrec_sets=()):
    """Median seconds per training epoch of every variant, timed round-robin after one warm-up epoch each."""
    built = {}
    for label, name, overrides, sync_free in variants(darec_sets, device, rlmrec_sets):
        extra = {"data_path": str(data_root)} if data_root else {}
        config = isolated_config(model=name, dataset=dataset, config_file_list=list(config_files), config_dict={
            "state": "ERROR", "use_gpu": device == "cuda", "show_progress": False, **extra, **overrides})
        _, (train_data, *_), model, trainer = build(config)
        epoch = functools.partial(_epoch_with, trainer, train_data, sync_free)
        epoch(0)  # warm-up
        built[label] = (model, epoch, train_data)
    # epoch index 1 after the warm-up's 0 (RecBole uses it only to label the progress bar)
    seconds = round_robin({label: functools.partial(epoch, 1) for label, (_, epoch, _) in built.items()}, repeats,
                          device)
    times = {label: statistics.median(values) for label, values in seconds.items()}
    for label, (model, _, train_data) in built.items():
        tables = sum(b.numel() * b.element_size() for n, b in model.named_buffers() if n.endswith("_semantic"))
        width = getattr(model, "semantic_dim", None)
        llm = f", LLM rows {width}-d, tables {tables / 2**20:.1f} MiB" if width else ""
        print(f"  {label}: epoch {times[label]:.3f}s ({len(train_data)} batches){llm}")
    return times


def _epoch_with(trainer, train_data, sync_free, index):
    with kmeans_without_host_waits(sync_free):
        trainer._train_epoch(train_data, index)


def head_step_time(n_users, n_items, llm_dim, device, repeats, batch=4096, d=32, sync_free=False):
    gen = torch.Generator().manual_seed(0)
    user_table = torch.randn(n_users, d, generator=gen).to(device).requires_grad_()
    item_table = torch.randn(n_items, d, generator=gen).to(device).requires_grad_()
    user_llm = torch.randn(n_users, llm_dim, generator=gen).to(device)
    item_llm = torch.randn(n_items, llm_dim, generator=gen).to(device)
    users = torch.randint(n_users, (batch,), generator=gen).to(device)
    items = torch.randint(n_items, (batch,), generator=gen).to(device)
    user_degree = torch.randint(1, 50, (n_users,), generator=gen).to(device)  # stand-in training degrees
    item_degree = torch.randint(1, 50, (n_items,), generator=gen).to(device)
    head = DaRecHead(d, llm_dim, sample_size=DAREC_DEFAULTS["darec_sample_size"],
                     reg_sample=DAREC_DEFAULTS["darec_reg_sample"]).to(device)  # the other settings: defaults

    def step():
        u, i = DaRecHead.sample_nodes(users, items, head.sample_size)
        terms = head(torch.cat([user_table[u], item_table[i]]), torch.cat([user_llm[u], item_llm[i]]),
                     degree=torch.cat([user_degree[u], item_degree[i]]), n_users=len(u))
        sum(terms.values()).backward()

    with kmeans_without_host_waits(sync_free):
        return timed(step, repeats, device)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="yelp,ml-100k", help="comma-separated: yelp (stand-in tables), ml-100k")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--llm-dim", type=int, default=1536)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--darec-set", action="append", default=[], metavar="KEY=VALUE,...",
                        help="also time DaRec's default with these keys changed, e.g. darec_sample_size=1024 "
                             "(repeatable: one row per use)")
    parser.add_argument("--rlmrec-set", action="append", default=[], metavar="KEY=VALUE,...",
                        help="also time RLMRec-Con's default with these keys changed, e.g. head_interval=8")
    args = parser.parse_args()
    darec_sets = [parse_candidate(text, "--darec-set", set(SEMANTIC_DEFAULTS) | set(DAREC_DEFAULTS))
                  for text in args.darec_set]
    rlmrec_sets = [parse_candidate(text, "--rlmrec-set", set(SEMANTIC_DEFAULTS)) for text in args.rlmrec_set]
    if args.threads:
        torch.set_num_threads(args.threads)
    print(environment_header())
    for dataset in args.datasets.split(","):
        if dataset == "ml-100k":
            print("part 1, ml-100k: real 384-d MiniLM profile tables, configs/ml100k_study.yaml")
            times = epoch_times("ml-100k", args.device, args.repeats, config_files=[ROOT / "configs/ml100k_study.yaml"],
                                darec_sets=darec_sets, rlmrec_sets=rlmrec_sets)
        else:
            print(f"part 1, {dataset}: LLM side GENERATED STAND-IN embeddings ({args.llm_dim}-d random rows), "
                  "cost measurement only")
            with tempfile.TemporaryDirectory() as root:
                standin_dataset(root, dataset, args.llm_dim)
                times = epoch_times(dataset, args.device, args.repeats, data_root=root, darec_sets=darec_sets,
                                    rlmrec_sets=rlmrec_sets)
        for label, seconds in times.items():
            if label != BASELINE:
                print(f"part 1, {dataset}: {label} / {BASELINE} epoch ratio {seconds / times[BASELINE]:.2f} "
                      f"({seconds:.3f}s / {times[BASELINE]:.3f}s; target <= 1.25)")
    n_hat, n_reg = DAREC_DEFAULTS["darec_sample_size"], DAREC_DEFAULTS["darec_reg_sample"]
    small = head_step_time(11_091, 11_010, args.llm_dim, args.device, args.repeats)
    large = head_step_time(110_910, 110_100, args.llm_dim, args.device, args.repeats)
    narrow = head_step_time(11_091, 11_010, 128, args.device, args.repeats)  # what the LLM-side width costs
    print(f"part 2, head step (batch 4096, N̂ {n_hat}, regulariser rows {n_reg}): 1x yelp {small * 1e3:.1f} ms, "
          f"10x yelp {large * 1e3:.1f} ms, ratio {large / small:.2f} (target ~1); "
          f"1x yelp with 128-d LLM rows {narrow * 1e3:.1f} ms ({narrow / small:.2f} of the {args.llm_dim}-d step)")
    if args.device == "cuda":
        free = head_step_time(11_091, 11_010, args.llm_dim, args.device, args.repeats, sync_free=True)
        print(f"part 2, head step at 1x yelp: {small * 1e3:.1f} ms as shipped vs {free * 1e3:.1f} ms with {SYNC_FREE} "
              f"(ratio {free / small:.2f})")


if __name__ == "__main__":
    main()
