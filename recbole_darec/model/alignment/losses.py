"""Pure alignment losses used by the DaRec and RLMRec heads: DaRec's four terms as shipped (orthogonality,
uniformity, the cross-view global term, the matched-centre local term), RLMRec's InfoNCE and a gradient-norm probe.
The alternatives DaRec's studies measured live in ``study/``; ``global_structure_loss`` and ``local_structure_loss``
select them by mode.

Every function here is RecBole-independent: plain tensors in, tensors out. Functions that compare
directions (all but :func:`cluster_centres` and :func:`kmeans`) L2-normalise rows themselves, so callers
may pass raw projector outputs.
"""
from __future__ import annotations

import math
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from ._util import check_rows, norm_rows
from .clustering import TooFewPointsError, cluster_centres, kmeans, match_clusters
from .study import global_modes, local_modes

__all__ = [
    "TooFewPointsError", "LocalAlignment", "orthogonality_loss", "uniformity_loss", "uniformity_losses",
    "crossview_loss", "global_structure_loss", "GLOBAL_MODES", "kmeans", "cluster_centres", "match_clusters",
    "local_structure_loss", "LOCAL_MODES", "info_nce", "grad_norms",
]

# the shipped global mode is 'crossview', the shipped local mode 'mse'; the others are study/ alternatives
# crossview_nce (study): the shipped cross-view pairing (node i's CF view with node i's LLM view) scored by
# info_nce over Ω instead of squared distance to the identity, so near-duplicates are not pushed apart as hard
GLOBAL_MODES = (*global_modes.ALL_PAIRS, "crossview", "crossview_nce")
LOCAL_MODES = ("mse", *local_modes.MODES)


class LocalAlignment(NamedTuple):
    """Result of :func:`local_structure_loss`.

    loss: scalar loss; labels_cf / labels_llm: (N,) K-means labels per side (for t-SNE plots);
    perm: (K,) CF cluster k is matched with LLM cluster perm[k]; valid: (K,) bool, pairs that were
    non-empty on both sides and hence entered the loss; kmeans_cf / kmeans_llm: (K, d') final K-means centres
    per side (no gradient), to warm-start the next call.
    """

    loss: torch.Tensor
    labels_cf: torch.Tensor
    labels_llm: torch.Tensor
    perm: torch.Tensor
    valid: torch.Tensor
    kmeans_cf: Optional[torch.Tensor] = None
    kmeans_llm: Optional[torch.Tensor] = None


def orthogonality_loss(shared: torch.Tensor, specific: torch.Tensor) -> torch.Tensor:
    """Orthogonality between the shared and specific part of each row.

    ``L = mean_i (ŝ_i · p̂_i)²`` with ŝ, p̂ the row-L2-normalised ``shared`` and ``specific`` (N, d').
    0 iff every row pair is orthogonal; at most 1.
    """
    check_rows("shared", shared)
    if shared.shape != specific.shape:
        raise ValueError(f"shared {tuple(shared.shape)} and specific {tuple(specific.shape)} differ in shape")
    return (norm_rows(shared) * norm_rows(specific)).sum(-1).pow(2).mean()


def uniformity_loss(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Uniformity of Wang & Isola (2020) on the hypersphere.

    ``L = log mean_{i≠j} exp(-t ||x̂_i − x̂_j||²)`` over the row-normalised x̂ (N ≥ 2 rows).
    Computed with logsumexp over the off-diagonal pairs (||a−b||² = 2 − 2 a·b for unit rows), so it never
    overflows. Lower is more uniform: ``-2t·N/(N-1)`` for a regular simplex, 0 for a collapse to one point.
    """
    check_rows("x", x, min_rows=2)
    return uniformity_losses([x], t)[0]


def uniformity_losses(parts: Sequence[torch.Tensor], t: float = 2.0) -> torch.Tensor:
    """:func:`uniformity_loss` of several same-shape (N, d) tensors at once: a (P,) tensor, one value per part.

    One batched Gram product forward and one backward (the N×N logits are symmetric, so the gradient is
    ``4t · softmax(logits) · x̂`` instead of autograd's two products), which is what makes the DaRec head's four
    uniformity terms cheap; the value is the same as calling :func:`uniformity_loss` on each part.
    """
    if not parts or any(p.shape != parts[0].shape for p in parts):
        raise ValueError(f"parts must be a non-empty sequence of same-shape tensors, got "
                         f"{[tuple(p.shape) for p in parts]}")
    check_rows("parts[0]", parts[0], min_rows=2)
    if t <= 0:
        raise ValueError(f"t must be > 0, got {t}")
    z = norm_rows(torch.stack(list(parts)))
    n = z.shape[1]
    # -t||a-b||² = 2t·a·b − 2t: the constant moved out of the logsumexp
    return _OffDiagonalLogSumExp.apply(z, 2.0 * t) - 2.0 * t - math.log(n * (n - 1))


class _OffDiagonalLogSumExp(torch.autograd.Function):
    """``logsumexp_{i≠j} (scale · z_b z_bᵀ)_ij`` per batch b of z (B, N, d): (B,) values.

    Forward keeps the softmax over the pairs (one N×N buffer per batch, computed in place), which is all the
    backward needs: ``d lse / d z = scale · (W + Wᵀ) z = 2·scale · W z`` (W symmetric).
    """

    @staticmethod
    def forward(ctx, z, scale):
        weights = torch.bmm(z * scale, z.transpose(1, 2))
        weights.diagonal(dim1=1, dim2=2).fill_(float("-inf"))
        shift = weights.amax(dim=(1, 2), keepdim=True)
        total = weights.sub_(shift).exp_().sum(dim=(1, 2), keepdim=True)  # exp(-inf) = 0 on the diagonal
        ctx.save_for_backward(z, weights.div_(total))
        ctx.scale = scale
        return (shift + total.log()).flatten()

    @staticmethod
    def backward(ctx, grad):
        z, weights = ctx.saved_tensors
        return torch.bmm(weights, z) * (2.0 * ctx.scale * grad).view(-1, 1, 1), None


def crossview_loss(z_cf: torch.Tensor, z_llm: torch.Tensor) -> torch.Tensor:
    """DaRec's global term as shipped: the *cross-view* similarity ``S^{CL} = Ẑ^C Ẑ^Lᵀ`` towards the identity.

    ``L = mean_i (1 − S^{CL}_ii)² + mean_{i≠j} (S^{CL}_ij)²`` over the row-normalised inputs (N, d'), row i the same
    node on both sides: each node's two shared views agree, different nodes' views are decorrelated. The two halves
    are averaged separately (a plain mean over N² entries would weigh the N diagonal entries 1/N). Written with d×d
    Gram matrices, O(N·d'²), no N×N matrix. The head applies it per group of Ω (its users, its items).
    """
    if z_cf.shape != z_llm.shape:
        raise ValueError(f"mode 'crossview' needs the same shape on both sides, got {tuple(z_cf.shape)} and "
                         f"{tuple(z_llm.shape)}")
    zc, zl = norm_rows(z_cf), norm_rows(z_llm)
    n = zc.shape[0]
    diagonal = (zc * zl).sum(-1)
    # Σ_ij (S^{CL}_ij)² = <Z^Cᵀ Z^C, Z^Lᵀ Z^L>_F (two d×d Gram matrices, no N×N matrix)
    total = ((zc.t() @ zc) * (zl.t() @ zl)).sum()
    off_diagonal = (total - diagonal.pow(2).sum()).clamp_min(0.0) / (n * (n - 1))
    return (1.0 - diagonal).pow(2).mean() + off_diagonal


def global_structure_loss(z_cf: torch.Tensor, z_llm: torch.Tensor, mode: str = "mse", tau: float = 0.1,
                          n_first: Optional[int] = None, counts: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The global term by mode: ``'crossview'`` is the shipped :func:`crossview_loss`; the within-side similarity
    modes (``'mse'``, the literal paper, ``'centered'``, ``'standardized'``, ``'neighbors'`` with temperature
    ``tau``) are study alternatives, ``study/global_modes.py``.

    ``n_first``: compare only the users × items block of the similarity matrices (rows ``[:n_first]`` against rows
    ``[n_first:]``; ``global_pairs: cross``), not 'crossview'. ``None`` = all pairs.

    ``counts`` (N,): how many uses of the batch each row stands for (:func:`info_nce`); 'crossview_nce' only.
    """
    check_rows("z_cf", z_cf, min_rows=2)
    check_rows("z_llm", z_llm, min_rows=2)
    if z_cf.shape[0] != z_llm.shape[0]:
        raise ValueError(f"z_cf has {z_cf.shape[0]} rows but z_llm has {z_llm.shape[0]}")
    if mode not in GLOBAL_MODES:
        raise ValueError(f"mode must be one of {GLOBAL_MODES}, got {mode!r}")
    if mode.startswith("crossview") and n_first is not None:
        raise ValueError(f"mode {mode!r} compares every row with every row; it takes no n_first")
    if counts is not None and mode != "crossview_nce":
        raise ValueError(f"mode {mode!r} weights every row alike; only 'crossview_nce' takes counts")
    if mode == "crossview":
        return crossview_loss(z_cf, z_llm)
    if mode == "crossview_nce":
        return info_nce(z_cf, z_llm, tau, counts)
    zc, zl = norm_rows(z_cf), norm_rows(z_llm)
    if n_first is None:
        return global_modes.ALL_PAIRS[mode](zc, zl, tau)
    return global_modes.USER_ITEM_BLOCK[mode](zc, zl, tau, n_first)


def local_structure_loss(
    z_cf: torch.Tensor,
    z_llm: torch.Tensor,
    k: int,
    mode: str = "mse",
    tau: float = 0.2,
    iters: int = 10,
    generator: Optional[torch.Generator] = None,
    init: Union[str, Tuple[torch.Tensor, torch.Tensor]] = "kmeans++",
) -> LocalAlignment:
    """DaRec's local (preference-centre) term.

    1. K-means (no grad) on the normalised rows of each side separately: labels^C, labels^L.
    2. Differentiable centres P^C, P^L = member means of the normalised rows (:func:`cluster_centres`).
    3. π = :func:`match_clusters` (P^C, P^L).
    4. Shipped (``'mse'``): ``mean_{k valid} ||p̂^C_k − p̂^L_π(k)||²`` (p̂ = normalised centres), where valid pairs
       are non-empty on both sides. The study alternatives ``'infonce'`` and ``'assign'`` (temperature ``tau``):
       ``study/local_modes.py``.

    Args:
        z_cf, z_llm: (N, d') rows of the same N nodes on both sides (raw shared projections, same width).
        k: clusters per side; iters, generator: passed to :func:`kmeans`.
        init: ``'kmeans++'``/``'random'`` for both sides, or a pair (CF centres, LLM centres), e.g. the previous
            call's ``kmeans_cf``/``kmeans_llm`` (warm start).
    Raises:
        ValueError for a bad mode/tau/k; :class:`TooFewPointsError` when a side has < k distinct rows.
    """
    if mode not in LOCAL_MODES:
        raise ValueError(f"mode must be one of {LOCAL_MODES}, got {mode!r}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if z_cf.shape != z_llm.shape:  # centres are compared directly, so widths must agree
        raise ValueError(f"z_cf {tuple(z_cf.shape)} and z_llm {tuple(z_llm.shape)} must have the same shape")
    zc, zl = norm_rows(z_cf), norm_rows(z_llm)
    # both sides in one batched K-means (seeded CF side first), each side clustered exactly as alone
    labels, centres = kmeans(torch.stack([zc, zl]), k, iters=iters, generator=generator,
                             init=init if isinstance(init, str) else torch.stack(list(init)))
    (lab_c, lab_l), (km_c, km_l) = labels, centres
    p_c, val_c = cluster_centres(zc, lab_c, k)
    p_l, val_l = cluster_centres(zl, lab_l, k)
    perm = match_clusters(p_c, p_l)
    valid = val_c & val_l[perm]
    pc, pl = norm_rows(p_c), norm_rows(p_l)
    if not bool(valid.any()):
        return LocalAlignment(z_cf.sum() * 0.0, lab_c, lab_l, perm, valid, km_c, km_l)
    if mode == "mse":
        loss = (pc[valid] - pl[perm[valid]]).pow(2).sum(-1).mean()
    else:
        loss = local_modes.MODES[mode](zc, zl, pc, pl, perm, valid, val_l, tau)
    return LocalAlignment(loss, lab_c, lab_l, perm, valid, km_c, km_l)


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float, counts: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Cosine InfoNCE with in-batch negatives (RLMRec-Con / RLMRec-Gen).

    ``L = −mean_i log( exp(â_i·b̂_i/τ) / Σ_j exp(â_i·b̂_j/τ) )``: row i of ``a`` must pick row i of ``b``
    among all rows of b. a and b are (N, d) with the same d.

    ``counts`` (N,) > 0 says row i stands for ``counts[i]`` identical rows of a batch with repeats (a user with
    several interactions): the value is then exactly that of the expanded batch, at the cost of N unique rows
    (each negative j enters the denominator counts[j] times, each anchor the mean counts[i] times).
    """
    check_rows("a", a)
    if a.shape != b.shape:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} differ in shape")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    a_hat, b_hat = norm_rows(a) / tau, norm_rows(b)  # 1/τ on an N×d operand, not on the N×N logits
    logits = a_hat @ b_hat.t()
    positive = (a_hat * b_hat).sum(-1)
    if counts is None:
        return (torch.logsumexp(logits, 1) - positive).mean()
    if counts.shape != (a.shape[0],):
        raise ValueError(f"counts must have shape ({a.shape[0]},), got {tuple(counts.shape)}")
    weight = counts.to(logits.dtype)
    per_row = torch.logsumexp(logits + weight.log().unsqueeze(0), 1) - positive
    return (weight * per_row).sum() / weight.sum()


def grad_norms(terms: Dict[str, torch.Tensor], wrt) -> Dict[str, float]:
    """L2 norm of each term's gradient w.r.t. ``wrt`` -- a tensor or a sequence of tensors, whose gradients
    are taken together (0.0 where a term does not reach them).

    A debug helper for logging each loss term's gradient share at the first step; it keeps the graph
    (retain_graph) so the caller can still call ``backward`` on the sum.
    """
    wrt = [wrt] if isinstance(wrt, torch.Tensor) else list(wrt)
    out = {}
    for name, value in terms.items():
        if not value.requires_grad:
            out[name] = 0.0
            continue
        grads = torch.autograd.grad(value, wrt, retain_graph=True, allow_unused=True)
        out[name] = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
    return out
