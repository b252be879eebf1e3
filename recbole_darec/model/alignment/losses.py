"""Pure alignment losses used by the DaRec and RLMRec heads.

Every function here is RecBole-independent: plain tensors in, tensors out. Functions that compare
directions (all but :func:`cluster_centres` and :func:`kmeans`) L2-normalise rows themselves, so callers
may pass raw projector outputs.
"""
from __future__ import annotations

import math
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ._util import check_rows, norm_rows
from .clustering import TooFewPointsError, cluster_centres, kmeans, match_clusters

__all__ = [
    "TooFewPointsError", "LocalAlignment", "orthogonality_loss", "uniformity_loss", "uniformity_losses",
    "global_structure_loss", "GLOBAL_MODES", "kmeans", "cluster_centres", "match_clusters",
    "local_structure_loss", "LOCAL_MODES", "info_nce", "grad_norms",
]

GLOBAL_MODES = ("mse", "centered", "standardized", "neighbors", "crossview")
LOCAL_MODES = ("mse", "infonce", "assign")


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


def global_structure_loss(z_cf: torch.Tensor, z_llm: torch.Tensor, mode: str = "mse", tau: float = 0.1,
                          n_first: Optional[int] = None) -> torch.Tensor:
    """Global alignment of the two sides' cosine-similarity structure.

    With Z = row-normalised inputs and ``S = Z Zᵀ`` (N×N) per side:

    * ``'mse'`` (literal spec): ``mean_{ij} (S^C_ij − S^L_ij)²`` over all N² entries.
    * ``'centered'``: off-diagonal entries only, each side minus its mean off-diagonal similarity m:
      ``mean_{i≠j} ((S^C_ij − m^C) − (S^L_ij − m^L))²``. A uniformly high-cosine (anisotropic) LLM side no
      longer asks the CF side to make all rows alike.
    * ``'standardized'``: as 'centered' but each side also divided by its off-diagonal std s, i.e.
      ``mean_{i≠j} ((S^C−m^C)/s^C − (S^L−m^L)/s^L)² = 2 − 2·corr(S^C, S^L)``; invariant to any affine
      rescaling of either side's similarities. Range [0, 4].
    * ``'neighbors'``: each row's similarity *neighbourhood*: ``mean_i KL(P^L_i || P^C_i)`` with
      ``P_i = softmax_{j≠i}(S_ij / tau)``, the LLM side the teacher (no gradient through it). The MSE modes are
      dominated by the many unrelated pairs; this one asks that a node's closest LLM neighbours become close
      in the CF space too. Materialises two N×N matrices (N ≤ N̂), O(N²·d).
    * ``'crossview'``: the *cross-view* similarity ``S^{CL} = Z^C Z^Lᵀ`` (row i of one side against row j of the
      other) towards the identity: ``mean_i (1 − S^{CL}_ii)² + mean_{i≠j} (S^{CL}_ij)²``. Each node's two shared
      views should agree and different nodes' views should be decorrelated; the two halves are averaged
      separately, because a plain mean over N² entries would give the N diagonal entries a weight of 1/N. Rows
      must correspond (row i is the same node on both sides) and both sides need the same width.

    The three MSE modes never materialise an N×N matrix: they are written with d×d Gram matrices
    (``Σ_ij S^C_ij S^L_ij = ||Z^Cᵀ Z^L||_F²``), so their cost is O(N·d²). The two sides may have different d.

    ``n_first``: compare only the *cross* block of S: rows ``[:n_first]`` (e.g. the users of Ω) against rows
    ``[n_first:]`` (its items), i.e. the N_u×N_i user–item similarities, a content-based ranking on the LLM side.
    The moments run over those N_u·N_i pairs (no diagonal); 'neighbors' takes each user's softmax over the items
    and each item's over the users. ``None`` = all pairs. Both blocks need ≥ 1 row (≥ 2 for 'neighbors').
    """
    check_rows("z_cf", z_cf, min_rows=2)
    check_rows("z_llm", z_llm, min_rows=2)
    if z_cf.shape[0] != z_llm.shape[0]:
        raise ValueError(f"z_cf has {z_cf.shape[0]} rows but z_llm has {z_llm.shape[0]}")
    if mode not in GLOBAL_MODES:
        raise ValueError(f"mode must be one of {GLOBAL_MODES}, got {mode!r}")
    zc, zl = norm_rows(z_cf), norm_rows(z_llm)
    if mode == "crossview":
        if n_first is not None:
            raise ValueError("mode 'crossview' compares every row with every row; it takes no n_first")
        return _crossview_identity(zc, zl)
    if n_first is not None:
        return _cross_structure_loss(zc, zl, mode, tau, n_first)
    if mode == "neighbors":
        return _neighborhood_kl(zc, zl, tau)
    n = zc.shape[0]
    cc = (zc.t() @ zc).pow(2).sum()  # Σ_ij (S^C_ij)²
    ll = (zl.t() @ zl).pow(2).sum()
    cl = (zc.t() @ zl).pow(2).sum()  # Σ_ij S^C_ij S^L_ij
    if mode == "mse":
        return ((cc + ll - 2.0 * cl) / (n * n)).clamp_min(0.0)
    # Off-diagonal moments: diagonals of S, S² and S^C∘S^L are all exactly 1 for unit rows.
    pairs = n * (n - 1)
    m_c = (zc.sum(0).pow(2).sum() - n) / pairs
    m_l = (zl.sum(0).pow(2).sum() - n) / pairs
    return _centered_match(mode, (cc - n) / pairs, (ll - n) / pairs, (cl - n) / pairs, m_c, m_l)


def _centered_match(mode, cc, ll, cl, m_c, m_l):
    """'centered' / 'standardized' from the compared pairs' moments: mean (S^C)², (S^L)², S^C·S^L and means m."""
    var_c = (cc - m_c * m_c).clamp_min(0.0)
    var_l = (ll - m_l * m_l).clamp_min(0.0)
    cov = cl - m_c * m_l
    if mode == "centered":
        return (var_c + var_l - 2.0 * cov).clamp_min(0.0)
    # eps keeps a fully collapsed side (std 0) finite instead of NaN
    corr = cov / torch.sqrt((var_c + 1e-12) * (var_l + 1e-12))
    return (2.0 - 2.0 * corr).clamp(0.0, 4.0)


def _cross_structure_loss(zc: torch.Tensor, zl: torch.Tensor, mode: str, tau: float, n_first: int) -> torch.Tensor:
    """global_structure_loss on the block rows[:n_first] × rows[n_first:] of S (unit rows in)."""
    n = zc.shape[0]
    if not 1 <= n_first < n:
        raise ValueError(f"n_first must leave >= 1 row on each side of the cross block, got {n_first} of {n}")
    (cu, ci), (lu, li) = (zc[:n_first], zc[n_first:]), (zl[:n_first], zl[n_first:])
    if mode == "neighbors":
        if min(n_first, n - n_first) < 2:  # a softmax over one candidate carries no gradient
            return zc.sum() * 0.0
        teacher = (lu @ li.t() / tau).detach()
        student = cu @ ci.t() / tau
        return 0.5 * (_kl_rows(teacher, student) + _kl_rows(teacher.t(), student.t()))
    pairs = n_first * (n - n_first)
    # Σ_ui S^C_ui S^L_ui = <Cuᵀ Lu, Ciᵀ Li>_F (d×d Gram matrices, no N_u×N_i matrix)
    cc = ((cu.t() @ cu) * (ci.t() @ ci)).sum() / pairs
    ll = ((lu.t() @ lu) * (li.t() @ li)).sum() / pairs
    cl = ((cu.t() @ lu) * (ci.t() @ li)).sum() / pairs
    if mode == "mse":
        return (cc + ll - 2.0 * cl).clamp_min(0.0)
    return _centered_match(mode, cc, ll, cl, cu.sum(0) @ ci.sum(0) / pairs, lu.sum(0) @ li.sum(0) / pairs)


def _crossview_identity(zc: torch.Tensor, zl: torch.Tensor) -> torch.Tensor:
    """'crossview' on unit rows: diagonal of Z^C Z^Lᵀ towards 1, its off-diagonal towards 0 (Gram form)."""
    if zc.shape != zl.shape:
        raise ValueError(f"mode 'crossview' needs the same shape on both sides, got {tuple(zc.shape)} and "
                         f"{tuple(zl.shape)}")
    n = zc.shape[0]
    diagonal = (zc * zl).sum(-1)
    # Σ_ij (S^{CL}_ij)² = <Z^Cᵀ Z^C, Z^Lᵀ Z^L>_F (two d×d Gram matrices, no N×N matrix)
    total = ((zc.t() @ zc) * (zl.t() @ zl)).sum()
    off_diagonal = (total - diagonal.pow(2).sum()).clamp_min(0.0) / (n * (n - 1))
    return (1.0 - diagonal).pow(2).mean() + off_diagonal


def _kl_rows(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """mean_i KL(softmax(teacher_i) || softmax(student_i))."""
    log_t, log_s = F.log_softmax(teacher_logits, dim=1), F.log_softmax(student_logits, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1).mean()


def _neighborhood_kl(zc: torch.Tensor, zl: torch.Tensor, tau: float) -> torch.Tensor:
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    off_diagonal = ~torch.eye(zc.shape[0], dtype=torch.bool, device=zc.device)
    with torch.no_grad():
        teacher = F.log_softmax((zl @ zl.t() / tau).masked_fill(~off_diagonal, float("-inf")), dim=1)
    student = F.log_softmax((zc @ zc.t() / tau).masked_fill(~off_diagonal, float("-inf")), dim=1)
    # KL(P^L || P^C) per row; the diagonal (log 0 on both sides) is excluded
    kl = torch.where(off_diagonal, teacher.exp() * (teacher - student), torch.zeros_like(student))
    return kl.sum(1).mean()



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
    """Local (preference-centre) alignment.

    1. K-means (no grad) on the normalised rows of each side separately: labels^C, labels^L.
    2. Differentiable centres P^C, P^L = member means of the normalised rows (:func:`cluster_centres`).
    3. π = :func:`match_clusters` (P^C, P^L).
    4. ``'mse'``: ``mean_{k valid} ||p̂^C_k − p̂^L_π(k)||²`` (p̂ = normalised centres), where valid pairs are
       non-empty on both sides. ``'infonce'``: InfoNCE over valid centres, logits ``p̂^C_k·p̂^L_j / tau``,
       the matched π(k) is the positive and the other valid LLM centres are negatives.
       ``'assign'`` (per node, not per centre): each node's soft assignment to the (detached) valid CF centres,
       ``q^C_i = softmax(ẑ^C_i·P̂^C/tau)``, and to their matched LLM centres, ``q^L_i = softmax(ẑ^L_i·P̂^L_π/tau)``,
       predict each other (swapped prediction): ``½ mean_i [H(sg q^L_i, q^C_i) + H(sg q^C_i, q^L_i)]``. The
       'mse' centre loss gives every member of a cluster the same push; here each node is moved towards the CF
       centre matched with its own LLM cluster. Rows must correspond (row i is the same node on both sides).

    Args:
        z_cf, z_llm: (N, d') rows of the same N nodes on both sides (raw shared projections, same width).
        k: clusters per side; iters, generator: passed to :func:`kmeans`; tau: temperature of 'infonce'/'assign'.
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
    elif mode == "assign":
        cf_logits = zc @ pc[valid].detach().t() / tau  # (N, K_valid); columns: CF centre k, LLM centre π(k)
        llm_logits = zl @ pl[perm[valid]].detach().t() / tau
        loss = 0.5 * (_soft_cross_entropy(llm_logits.detach(), cf_logits)
                      + _soft_cross_entropy(cf_logits.detach(), llm_logits))
    else:
        cols = torch.nonzero(val_l).squeeze(1)  # valid LLM centres are the candidates
        logits = pc[valid] @ pl[cols].t() / tau
        target = torch.searchsorted(cols, perm[valid])  # position of π(k) among the candidates
        loss = F.cross_entropy(logits, target)
    return LocalAlignment(loss, lab_c, lab_l, perm, valid, km_c, km_l)


def _soft_cross_entropy(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """mean_i H(softmax(target_logits_i), softmax(logits_i))."""
    return -(F.softmax(target_logits, dim=1) * F.log_softmax(logits, dim=1)).sum(1).mean()


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
