"""How far DaRec trusts the text: a statistic of the training graph, measured once before training.

The question is whether the LLM side knows anything the interactions confirm. For an item ``i`` consumed by a
training user, take ``j``, another item of the same user, and ``k``, the item of a uniformly drawn training
interaction (so ``k`` is drawn by popularity, like ``j``). The text *agrees* with the graph when ``i``'s LLM row is
closer to ``j``'s than to ``k``'s (cosine of centred rows). Its rate over many triples is an AUC: 0.5 when the text
says nothing about who consumes what.

How far above 0.5 is "nothing" depends on the dataset (few items make the AUC of a random text assignment
wander), so the same triples are also scored with the texts shuffled among the items (``n_null`` times): the
*excess* is the real AUC minus the shuffles' mean, and only the part above ``NOISE_SDS`` of the shuffles' standard
deviations counts. Below ``TRUST_FLOOR`` of it the text gets no trust at all, from ``FULL_TRUST_EXCESS`` on full
trust, with a short linear ramp between. DaRec multiplies λ by the trust: text that agrees with the graph keeps the
whole alignment, text that does not switches it off (DaRec then trains as its backbone does).

Everything here uses its own seeded generator: the statistic is a property of the data, and the model's random
streams stay as they are. Validation and test interactions are never read (the caller passes the training ones).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["TextAgreement", "text_agreement", "trust_from_agreement", "TRUST_FLOOR", "FULL_TRUST_EXCESS",
           "NOISE_SDS"]

# The excess (above the shuffles' noise) below which the text gets no trust, and from which it gets full trust.
# Chosen on the training-graph statistics and validation runs of docs/results.md: every trust > 0 lowered validation
# on amazon-scientific with half its item texts permuted (0.034 here), while ml-100k's real titles (0.047-0.052 over
# five splits) gain with full trust; amazon-scientific (0.142) and amazon-office (0.064) lie far above, the
# permuted controls at 0 ± noise. The gap between those two is small: text between them is a judgement call.
TRUST_FLOOR = 0.040
FULL_TRUST_EXCESS = 0.045
# Standard deviations of the shuffled texts' AUCs that an excess must clear before any of it counts.
NOISE_SDS = 3.0


@dataclass(frozen=True)
class TextAgreement:
    """The measurement behind a trust value (logged, and kept on the model for reports)."""

    auc: float          # the real texts' AUC
    null_mean: float    # mean AUC of the shuffled texts
    null_std: float     # their standard deviation
    triples: int        # triples scored (each AUC uses the same ones)

    @property
    def excess(self) -> float:
        return self.auc - self.null_mean


def _auc(rows, anchor, positive, negative):
    pos = (rows[anchor] * rows[positive]).sum(-1)
    neg = (rows[anchor] * rows[negative]).sum(-1)
    return ((pos > neg).double().mean() + 0.5 * (pos == neg).double().mean()).item()


def text_agreement(item_rows: torch.Tensor, item_mask: torch.Tensor, user_ids: torch.Tensor,
                   item_ids: torch.Tensor, triples: int = 100_000, n_null: int = 8, seed: int = 0) -> TextAgreement:
    """The AUC of the item texts on the training graph, and of ``n_null`` shuffles of them.

    Args:
        item_rows: (n_items, d) LLM rows of the items.
        item_mask: (n_items,) bool, True where the item has a profile.
        user_ids, item_ids: the training interactions, one entry each.
        triples: triples (i, j, k) drawn; fewer are kept where j or k is i itself.
        n_null: shuffles of the texts among the items that have one.
        seed: of this function's own generator.
    Returns:
        :class:`TextAgreement`; ``triples == 0`` when no user has two items with text (nothing can be measured).
    """
    gen = torch.Generator().manual_seed(seed)
    rows = item_rows.detach().float().cpu()
    has_text = item_mask.detach().cpu().bool()
    users, items = user_ids.detach().cpu().long(), item_ids.detach().cpu().long()
    keep = has_text[items]
    users, items = users[keep], items[keep]
    order = torch.argsort(users, stable=True)
    users, items = users[order], items[order]
    _, counts = torch.unique_consecutive(users, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    degree = torch.repeat_interleave(counts, counts)  # each interaction's user's number of items with text
    start = torch.repeat_interleave(starts, counts)
    anchors_pool = torch.nonzero(degree >= 2).flatten()
    if anchors_pool.numel() == 0:
        return TextAgreement(0.5, 0.5, 0.0, 0)
    anchor = anchors_pool[torch.randint(len(anchors_pool), (triples,), generator=gen)]
    # another interaction of the anchor's user: an offset in its block that skips the anchor itself
    offset = (torch.rand(triples, generator=gen) * (degree[anchor] - 1)).long()
    positive = start[anchor] + offset
    positive = positive + (positive >= anchor).long()
    negative = torch.randint(len(items), (triples,), generator=gen)
    anchor, positive, negative = items[anchor], items[positive], items[negative]
    valid = (positive != anchor) & (negative != anchor)
    anchor, positive, negative = anchor[valid], positive[valid], negative[valid]
    if anchor.numel() == 0:
        return TextAgreement(0.5, 0.5, 0.0, 0)

    with_text = torch.nonzero(has_text).flatten()
    centred = rows.clone()
    centred[with_text] = rows[with_text] - rows[with_text].mean(0, keepdim=True)
    unit = F.normalize(centred, dim=-1)
    auc = _auc(unit, anchor, positive, negative)
    nulls = []
    for _ in range(n_null):
        shuffled = unit.clone()
        shuffled[with_text] = unit[with_text[torch.randperm(len(with_text), generator=gen)]]
        nulls.append(_auc(shuffled, anchor, positive, negative))
    null = torch.tensor(nulls, dtype=torch.float64)
    null_std = null.std().item() if n_null >= 2 else 0.0
    return TextAgreement(auc, null.mean().item() if n_null else 0.5, null_std, int(anchor.numel()))


def trust_from_agreement(agreement: TextAgreement) -> float:
    """The share of λ DaRec keeps: 0 up to ``TRUST_FLOOR`` of excess above the shuffles' noise, 1 from
    ``FULL_TRUST_EXCESS`` on, linear between.

    With nothing measurable (no user with two items that have text) the text is not trusted."""
    if agreement.triples == 0:
        return 0.0
    signal = agreement.excess - NOISE_SDS * agreement.null_std
    return float(min(1.0, max(0.0, (signal - TRUST_FLOOR) / (FULL_TRUST_EXCESS - TRUST_FLOOR))))
