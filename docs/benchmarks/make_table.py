"""Table of the RLMRec-split reproduction: our runs (run_compare.py records) beside the published numbers.

    python docs/benchmarks/make_table.py docs/benchmarks/rlmrec-yelp/runs.jsonl [more runs.jsonl ...]

Writes ``rlmrec-splits.csv`` next to this file and prints the markdown rows for ``rlmrec-splits.md``: per dataset and
row, mean ± sample std over seeds (the mean alone for a single seed) of R@5/10/20 and N@5/10/20, epochs to best, seconds per epoch (training time /
epochs run), and the relative difference of each mean to the published value of the model it reproduces.
"""
import csv
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
METRICS = ("recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20")
# which published row each of our rows reproduces (plugin and RecBole implementations of the same model)
REPRODUCES = {"LightGCNBackbone": "LightGCN", "LightGCN": "LightGCN", "SGLBackbone": "SGL", "SGL": "SGL",
              "RLMRecConLightGCN": "RLMRec-Con (LightGCN)"}


def published():
    with open(HERE / "published.csv", encoding="utf-8") as fh:
        return {(r["dataset"], r["model"]): {m: float(r[m]) for m in METRICS} for r in csv.DictReader(fh)}


def rows(paths):
    runs = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if "test" in record:
                runs.setdefault((record["dataset"], record["model"]), []).append(record)
    return runs


def main(paths):
    paper = published()
    out, lines = [], []
    # rows reproducing the same published model (plugin and RecBole implementations) stand together, above it
    def group(item):
        (dataset, model), _ = item
        return dataset, REPRODUCES.get(model, model), model
    ordered = sorted(rows(paths).items(), key=group)
    for index, ((dataset, model), records) in enumerate(ordered):
        row = {"dataset": dataset, "model": model, "seeds": len(records)}
        ref = paper.get((dataset, REPRODUCES.get(model, "")))
        cells = []
        for m in METRICS:
            values = [r["test"][m] for r in records]
            mean = statistics.mean(values)
            std = statistics.stdev(values) if len(values) > 1 else None  # one seed: no spread to show
            row[m], row[m + "_std"] = round(mean, 4), "" if std is None else round(std, 4)
            diff = "" if ref is None else f" ({100 * (mean / ref[m] - 1):+.1f} %)"
            row[m + "_vs_published"] = "" if ref is None else round(100 * (mean / ref[m] - 1), 1)
            cells.append(f"{mean:.4f}{'' if std is None else f' ± {std:.4f}'}{diff}")
        row["epochs_to_best"] = statistics.mean(r["epochs_to_best"] for r in records)
        row["s_per_epoch"] = round(statistics.mean(r["train_time_s"] / max(r["epochs_run"], 1) for r in records), 2)
        out.append(row)
        lines.append(f"| {dataset} | {model} | {len(records)} | " + " | ".join(cells)
                     + f" | {row['epochs_to_best']:.0f} | {row['s_per_epoch']:.1f} |")
        last_of_group = index + 1 == len(ordered) or group(ordered[index + 1])[:2] != group(ordered[index])[:2]
        if ref is not None and last_of_group:
            lines.append(f"| {dataset} | published {REPRODUCES[model]} | 5 | "
                         + " | ".join(f"{ref[m]:.4f}" for m in METRICS) + " | | |")
    with open(HERE / "rlmrec-splits.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(out[0]))
        writer.writeheader()
        writer.writerows(out)
    print("| dataset | row | seeds | R@5 | R@10 | R@20 | N@5 | N@10 | N@20 | epochs to best | s/epoch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
