"""Evaluation under ``eval_protocol: cold_items``: two rankings and two diagnostics per split (docs/cold-items.md).

Keys of the result (``k`` over ``topk``, ``m`` over ``metrics``; every metric is RecBole's own class, fed the
``rec.topk`` matrix its evaluator builds):

* ``m@k``: the **all** ranking -- every item, warm and cold, ranked; earlier splits' items masked as RecBole does
  (train for valid, train + valid for test); every positive of the split counts. Early stopping reads this
  ranking (``valid_metric: Recall@20`` by default).
* ``warm_m@k``: the same ranking scored on the warm positives only (users with one).
* ``cold_m@k``: the **cold** ranking -- only cold items are candidates; users with a cold positive, scored on them.
* ``cold_slots@K`` / ``cold_users@K`` (``K`` = the largest ``topk``): in the all ranking, the share of top-K slots
  held by cold items, and the share of users with at least one cold item in their top K.

How each model scores a cold item:

* text-only models (``scores_items_by_text``, e.g. ``TextOnly``): their own scores, which read text only;
* aligned models with a text -> CF map (DaRec, RLMRec-Con): ``a * <e_u, m_i> + b`` from the item's text row
  (:meth:`SemanticMixin.cold_scorer`, scale rule ``cold_scale``);
* every other model (LightGCN, Pop, RLMRec-Gen, a head that never trained) **cannot**: its cold items are put below
  every warm item of the user in the all ranking, in an order drawn from ``seed`` (the same order in the cold
  ranking, i.e. a random ranking there).
"""
import math
from collections import OrderedDict

import torch
from recbole.evaluator.collector import DataStruct
from recbole.evaluator.register import metrics_dict

from recbole_darec.cli_errors import UserError


def topk_metrics(config):
    """RecBole's metric objects for ``config['metrics']``; only top-k metrics (they read ``rec.topk``) fit here."""
    out = []
    for name in config["metrics"]:
        metric_class = metrics_dict.get(str(name).lower())
        if metric_class is None or list(getattr(metric_class, "metric_need", [])) != ["rec.topk"]:
            raise UserError(f"metrics: {name} is not a top-k ranking metric, which eval_protocol=cold_items reports "
                            "(use Recall, NDCG, Hit, MRR, Precision, MAP)")
        out.append(metric_class(config))
    return out


def text_map_scorer(model, cold):
    """``f(user ids) -> (n, len(cold))`` scores of the cold items from their text, or None (cannot)."""
    if not hasattr(model, "cold_scorer"):
        return None
    try:
        score = model.cold_scorer(model.cold_directions(model.item_semantic[cold].float()))
    except UserError:  # no map, or a head that never trained: the model says why (recommend prints it)
        return None
    user_all, _ = model._eval_embeddings()
    return lambda users: score(user_all[users])


class ColdScorer:
    """Full score matrices for a batch of users, cold columns filled by the model's rule (module docstring)."""

    def __init__(self, model, cold, seed):
        self.model, self.cold = model, cold
        self.native = bool(getattr(model, "scores_items_by_text", False))
        self.text_map = None if self.native else text_map_scorer(model, cold)
        self.generator = torch.Generator().manual_seed(int(seed))

    @property
    def kind(self):
        return "text" if self.native else "text map" if self.text_map else "cannot"

    def __call__(self, interaction, users):
        scores = self.model.full_sort_predict(interaction).view(len(users), -1).float()
        if self.native:
            return scores
        if self.text_map is not None:
            scores[:, self.cold] = self.text_map(users).float()
            return scores
        warm = scores.clone()
        warm[:, self.cold] = math.inf
        floor = warm.min(dim=1, keepdim=True).values - 1.0  # below every warm item of the user
        noise = torch.rand(len(users), len(self.cold), generator=self.generator).to(scores.device)
        scores[:, self.cold] = floor - noise
        return scores


def _rec_topk(hits, pos_len):
    data = DataStruct()
    data.set("rec.topk", torch.cat([hits.long(), pos_len.long().unsqueeze(1)], dim=1).cpu())
    return data


@torch.no_grad()
def evaluate(model, eval_data, config):
    """The result dict of one split (module docstring); ``eval_data`` is a full-sort loader with ``cold_items``."""
    metrics = topk_metrics(config)
    k_max = max(config["topk"])
    device = config["device"]
    cold = eval_data.cold_items.to(device)
    is_cold = torch.zeros(model.n_items, dtype=torch.bool, device=device)
    is_cold[cold] = True
    scorer = ColdScorer(model, cold, config["seed"])
    parts = {"all": [], "warm": [], "cold": []}
    slots, reached = [], []
    for interaction, history_index, positive_u, positive_i in eval_data:
        interaction = interaction.to(device)
        users = interaction[model.USER_ID]
        scores = scorer(interaction, users)
        scores[:, 0] = -math.inf
        if history_index is not None:
            scores[history_index[0].to(device), history_index[1].to(device)] = -math.inf
        positive = torch.zeros_like(scores, dtype=torch.bool)
        positive[positive_u.to(device), positive_i.to(device)] = True
        top_all = torch.topk(scores, k_max, dim=1).indices
        top_cold = torch.topk(scores.masked_fill(~is_cold, -math.inf), k_max, dim=1).indices
        for name, top, pos in (("all", top_all, positive), ("warm", top_all, positive & ~is_cold),
                               ("cold", top_cold, positive & is_cold)):
            pos_len = pos.sum(1)
            has = pos_len > 0
            parts[name].append((pos.gather(1, top)[has], pos_len[has]))
        cold_in_top = is_cold[top_all]
        slots.append(cold_in_top.float().mean(1))
        reached.append(cold_in_top.any(1).float())
    result = OrderedDict()
    for name, prefix in (("all", ""), ("warm", "warm_"), ("cold", "cold_")):
        hits = torch.cat([h for h, _ in parts[name]])
        pos_len = torch.cat([n for _, n in parts[name]])
        data = _rec_topk(hits, pos_len)
        for metric in metrics:
            for key, value in metric.calculate_metric(data).items():
                result[prefix + key] = value
    places = config["metric_decimal_place"]
    result[f"cold_slots@{k_max}"] = round(float(torch.cat(slots).mean()), places)
    result[f"cold_users@{k_max}"] = round(float(torch.cat(reached).mean()), places)
    return result
