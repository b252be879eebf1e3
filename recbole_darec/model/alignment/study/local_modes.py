"""Study alternatives of DaRec's local term (the shipped one is the MSE between matched centres, in
``losses.local_structure_loss``).

Each takes what ``local_structure_loss`` has after clustering and matching: the unit rows ``zc``, ``zl`` (N, d'),
the normalised centres ``pc``, ``pl`` (K, d'), the matching ``perm`` (CF centre k ↔ LLM centre perm[k]), ``valid``
(K,) (pairs non-empty on both sides, at least one), ``valid_llm`` (K,) (non-empty LLM centres) and the temperature.

* ``infonce``: InfoNCE over the valid centres, logits ``p̂^C_k·p̂^L_j / tau``; the matched π(k) is the positive and
  the other valid LLM centres are the negatives.
* ``assign`` (per node, not per centre): each node's soft assignment to the (detached) valid CF centres,
  ``q^C_i = softmax(ẑ^C_i·P̂^C/tau)``, and to their matched LLM centres, ``q^L_i = softmax(ẑ^L_i·P̂^L_π/tau)``, predict
  each other (swapped prediction): ``½ mean_i [H(sg q^L_i, q^C_i) + H(sg q^C_i, q^L_i)]``. The centre MSE gives every
  member of a cluster the same push; here each node moves towards the CF centre matched with its own LLM cluster.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["MODES"]


def centre_infonce(zc, zl, pc, pl, perm, valid, valid_llm, tau) -> torch.Tensor:
    cols = torch.nonzero(valid_llm).squeeze(1)  # valid LLM centres are the candidates
    logits = pc[valid] @ pl[cols].t() / tau
    target = torch.searchsorted(cols, perm[valid])  # position of π(k) among the candidates
    return F.cross_entropy(logits, target)


def node_assignment(zc, zl, pc, pl, perm, valid, valid_llm, tau) -> torch.Tensor:
    cf_logits = zc @ pc[valid].detach().t() / tau  # (N, K_valid); columns: CF centre k, LLM centre π(k)
    llm_logits = zl @ pl[perm[valid]].detach().t() / tau
    return 0.5 * (_soft_cross_entropy(llm_logits.detach(), cf_logits)
                  + _soft_cross_entropy(cf_logits.detach(), llm_logits))


MODES = {"infonce": centre_infonce, "assign": node_assignment}


def _soft_cross_entropy(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """mean_i H(softmax(target_logits_i), softmax(logits_i))."""
    return -(F.softmax(target_logits, dim=1) * F.log_softmax(logits, dim=1)).sum(1).mean()
