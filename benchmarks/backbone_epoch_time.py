"""Seconds per training epoch of the graph backbones on one dataset, all built in this process and timed
alternately (so a busy machine slows them alike): LightGCNBackbone is the baseline of every ratio.

    python benchmarks/backbone_epoch_time.py [--dataset=yelp] [--repeats=2] [--threads=1] [--recbole-sgl]
        [--no-lightgcl]

Settings: RLMRec's for each model and dataset (configs/rlmrec/<Model>-<dataset>.yaml) plus the dataset config.
SGLBackbone runs with both ``ssl_negatives`` (``all``: the reference InfoNCE over every user/item; ``batch``).
``--recbole-sgl`` adds RecBole's SGL (one epoch takes minutes on a CPU).
"""
import argparse
from pathlib import Path

from common import ROOT, environment_header, round_robin

from recbole_darec.config import isolated_config  # leaves this script's own argv alone
from recbole_darec.single_run import build


def variants(dataset, recbole_sgl, lightgcl):
    def files(model):
        path = ROOT / "configs" / "rlmrec" / f"{model}-{dataset}.yaml"
        return [str(path)] if path.exists() else None

    rows = [("LightGCNBackbone", "LightGCNBackbone", {}),
            ("SGLBackbone (ssl_negatives all)", "SGLBackbone", {"ssl_negatives": "all"}),
            ("SGLBackbone (ssl_negatives batch)", "SGLBackbone", {"ssl_negatives": "batch"})]
    if lightgcl:
        rows += [("LightGCL (cl_negatives all)", "LightGCL", {"cl_negatives": "all"}),
                 ("LightGCL (cl_negatives batch)", "LightGCL", {"cl_negatives": "batch"})]
    if recbole_sgl:
        rows.append(("SGL (RecBole)", "SGL", {}))
    return [(label, model, files(model), overrides) for label, model, overrides in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="yelp")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--recbole-sgl", action="store_true")
    parser.add_argument("--no-lightgcl", action="store_true", help="skip LightGCL (its epoch is long on a CPU)")
    parser.add_argument("--only", default=None, help="comma-separated label substrings to keep (baseline always)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(environment_header())
    built = []
    rows = variants(args.dataset, args.recbole_sgl, not args.no_lightgcl)
    if args.only:
        wanted = args.only.split(",")
        rows = [r for r in rows if r[0] == "LightGCNBackbone" or any(w in r[0] for w in wanted)]
    for label, model, files, overrides in rows:
        extra = {"data_path": args.data_path} if args.data_path else {}
        config = isolated_config(model=model, dataset=args.dataset, config_file_list=files,
                        config_dict={"state": "ERROR", "show_progress": False, **extra, **overrides})
        _, (train_data, _, _), model_obj, trainer = build(config)
        built.append((label, train_data, trainer, files))
    times = round_robin({label: (lambda t=trainer, d=train_data: t._train_epoch(d, 0))
                         for label, train_data, trainer, _ in built}, args.repeats)
    base = min(times["LightGCNBackbone"])
    print(f"dataset {args.dataset}, {len(built[0][1])} batches per epoch, best of {args.repeats} epochs")
    print(f"{'model':<36} {'epoch s':>9} {'x LightGCN':>11}  config")
    for label, _, _, files in built:
        best = min(times[label])
        name = Path(files[0]).relative_to(ROOT) if files else "-"
        print(f"{label:<36} {best:>9.2f} {best / base:>11.2f}  {name}")


if __name__ == "__main__":
    main()
