"""Where does an aligned model gain? Test Recall@20 / NDCG@20 per user, grouped by the user's number of training
interactions, for two rows of a comparison, paired by seed (the numbers of docs/darec_study.md §5).

    python docs/study/activity_breakdown.py --runs=results/compare-ml-100k/runs.jsonl \\
        --base=LightGCNBackbone --model=DaRecLightGCN [--groups=4]

Each run's best checkpoint is reloaded (safe loader), every test user is ranked against all items with the
protocol's history masked, and the per-user metrics are checked against the recorded test metrics before use.
Groups are training-degree quantiles of each seed's own split.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from recbole.evaluator.metrics import NDCG, Recall  # noqa: E402

from recbole_darec.quick_start import load_data_and_model  # noqa: E402

K = 20


@torch.no_grad()
def per_user_metrics(checkpoint):
    """(user ids, training degree, recall@K, ndcg@K) of every test user of a checkpoint's run; the metrics are
    RecBole's own (``metric_info``), applied per user instead of averaged."""
    config, model, _, train_data, _, test_data = load_data_and_model(checkpoint)
    model.eval()
    degree = np.bincount(train_data.dataset.inter_feat[train_data.dataset.uid_field].numpy(),
                         minlength=train_data.dataset.user_num)
    users = test_data.uid_list
    scores = torch.cat([model.full_sort_predict({model.USER_ID: chunk}).view(len(chunk), -1)
                        for chunk in users.split(512)])
    scores[:, 0] = -np.inf  # [PAD]
    positive = torch.zeros_like(scores, dtype=torch.bool)
    for row, uid in enumerate(users.tolist()):
        scores[row, test_data.uid2history_item[uid]] = -np.inf
        positive[row, test_data.uid2positive_item[uid]] = True
    pos_index = positive.gather(1, scores.topk(K, dim=1).indices).numpy()
    pos_len = positive.sum(1).numpy()
    recall = Recall(config).metric_info(pos_index, pos_len)[:, K - 1]
    ndcg = NDCG(config).metric_info(pos_index, pos_len)[:, K - 1]
    return users.numpy(), degree[users.numpy()], recall, ndcg


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--seed-list", help="only these seeds, e.g. 2020,2021 (default: every seed both rows ran)")
    args = parser.parse_args()
    records = [json.loads(line) for line in Path(args.runs).read_text().splitlines() if line.strip()]
    by = {(r["model"], r["seed"]): r for r in records}
    seeds = sorted(s for (m, s) in by if m == args.base and (args.model, s) in by)
    if args.seed_list:
        seeds = [s for s in seeds if str(s) in args.seed_list.split(",")]
    rows = []
    for seed in seeds:
        result = {}
        for name in (args.base, args.model):
            record = by[(name, seed)]
            # records keep paths relative to their comparison's folder (the runs file's)
            users, degree, recall, ndcg = per_user_metrics(str(Path(args.runs).parent / record["checkpoint"]))
            for metric, values in (("recall@20", recall), ("ndcg@20", ndcg)):
                if abs(values.mean() - record["test"][metric]) > 1e-4:  # the recomputation must be RecBole's
                    raise SystemExit(f"{name} seed {seed}: {metric} {values.mean():.6f} != recorded "
                                     f"{record['test'][metric]:.6f}")
            result[name] = (users, degree, recall, ndcg)
        users, degree = result[args.base][:2]
        assert np.array_equal(users, result[args.model][0])
        edges = np.quantile(degree, np.linspace(0, 1, args.groups + 1))
        group = np.clip(np.searchsorted(edges, degree, side="right") - 1, 0, args.groups - 1)
        for g in range(args.groups):
            members = group == g
            rows.append((seed, g, int(degree[members].min()), int(degree[members].max()), int(members.sum()),
                         *(result[name][m][members].mean() for name in (args.base, args.model) for m in (2, 3))))
    rows = np.array(rows, dtype=float)
    print(f"test metrics by training-degree quantile ({len(seeds)} seeds: {seeds}); mean over seeds")
    print(f"{'group':>5} {'degree':>9} {'users':>5} | {'R@20 ' + args.base:>22} {args.model:>14} {'diff':>8} |"
          f" {'N@20 ' + args.base:>22} {args.model:>14} {'diff':>8}")
    for g in range(args.groups):
        part = rows[rows[:, 1] == g]
        lo, hi, n = part[:, 2].mean(), part[:, 3].mean(), part[:, 4].mean()
        r_base, n_base, r_model, n_model = (part[:, i].mean() for i in (5, 6, 7, 8))
        wins = int((part[:, 7] > part[:, 5]).sum())
        print(f"{g + 1:>5} {lo:>4.0f}-{hi:<4.0f} {n:>5.0f} | {r_base:>22.4f} {r_model:>14.4f} {r_model - r_base:>+8.4f} |"
              f" {n_base:>22.4f} {n_model:>14.4f} {n_model - n_base:>+8.4f}   (R@20 better on {wins}/{len(part)} seeds)")


if __name__ == "__main__":
    main()
