"""Pure alignment losses used by the DaRec and RLMRec heads.

Every function here is RecBole-independent: plain tensors in, tensors out. Functions that compare
directions (all but :func:`cluster_centres` and :func:`kmeans`) L2-normalise rows themselves, so callers
may pass raw projector outputs. See DESIGN.md §3 for where each term comes from.
"""
from __future__ import annotations

import math
from typing import Dict, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

__all__ = [
    "TooFewPointsError", "LocalAlignment", "orthogonality_loss", "uniformity_loss",
    "global_structure_loss", "GLOBAL_MODES", "kmeans", "cluster_centres", "match_clusters",
    "local_structure_loss", "LOCAL_MODES", "info_nce", "grad_norms",
]

GLOBAL_MODES = ("mse", "centered", "standardized")
LOCAL_MODES = ("mse", "infonce")
_EPS = 1e-12


class TooFewPointsError(ValueError):
    """Raised by :func:`kmeans` when there are fewer distinct points than clusters."""


class LocalAlignment(NamedTuple):
    """Result of :func:`local_structure_loss`.

    loss: scalar loss; labels_cf / labels_llm: (N,) K-means labels per side (for t-SNE plots);
    perm: (K,) CF cluster k is matched with LLM cluster perm[k]; valid: (K,) bool, pairs that were
    non-empty on both sides and hence entered the loss.
    """

    loss: torch.Tensor
    labels_cf: torch.Tensor
    labels_llm: torch.Tensor
    perm: torch.Tensor
    valid: torch.Tensor


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1, eps=_EPS)


def _check_rows(name: str, x: torch.Tensor, min_rows: int = 1) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-d (rows, dim) tensor, got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {x.shape[0]}")


def orthogonality_loss(shared: torch.Tensor, specific: torch.Tensor) -> torch.Tensor:
    """Orthogonality between the shared and specific part of each row.

    ``L = mean_i (ŝ_i · p̂_i)²`` with ŝ, p̂ the row-L2-normalised ``shared`` and ``specific`` (N, d').
    0 iff every row pair is orthogonal; at most 1.
    """
    _check_rows("shared", shared)
    if shared.shape != specific.shape:
        raise ValueError(f"shared {tuple(shared.shape)} and specific {tuple(specific.shape)} differ in shape")
    return (_norm(shared) * _norm(specific)).sum(-1).pow(2).mean()


def uniformity_loss(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Uniformity of Wang & Isola (2020) on the hypersphere.

    ``L = log mean_{i≠j} exp(-t ||x̂_i − x̂_j||²)`` over the row-normalised x̂ (N ≥ 2 rows).
    Computed with logsumexp over the off-diagonal pairs (||a−b||² = 2 − 2 a·b for unit rows), so it never
    overflows. Lower is more uniform: ``-2t·N/(N-1)`` for a regular simplex, 0 for a collapse to one point.
    """
    _check_rows("x", x, min_rows=2)
    if t <= 0:
        raise ValueError(f"t must be > 0, got {t}")
    z = _norm(x)
    n = z.shape[0]
    # -t||a-b||² = 2t·a·b − 2t: one N×N matrix, the constant moved out of the logsumexp
    logits = (2.0 * t) * (z @ z.t())
    logits.fill_diagonal_(float("-inf"))  # safe in place: the scalar product saved nothing for backward
    return torch.logsumexp(logits.flatten(), dim=0) - 2.0 * t - math.log(n * (n - 1))


def global_structure_loss(z_cf: torch.Tensor, z_llm: torch.Tensor, mode: str = "mse") -> torch.Tensor:
    """Global alignment of the two sides' cosine-similarity structure.

    With Z = row-normalised inputs and ``S = Z Zᵀ`` (N×N) per side:

    * ``'mse'`` (literal spec): ``mean_{ij} (S^C_ij − S^L_ij)²`` over all N² entries.
    * ``'centered'``: off-diagonal entries only, each side minus its mean off-diagonal similarity m:
      ``mean_{i≠j} ((S^C_ij − m^C) − (S^L_ij − m^L))²``. A uniformly high-cosine (anisotropic) LLM side no
      longer asks the CF side to make all rows alike.
    * ``'standardized'``: as 'centered' but each side also divided by its off-diagonal std s, i.e.
      ``mean_{i≠j} ((S^C−m^C)/s^C − (S^L−m^L)/s^L)² = 2 − 2·corr(S^C, S^L)``; invariant to any affine
      rescaling of either side's similarities. Range [0, 4].

    Never materialises an N×N matrix: every mode is written with d×d Gram matrices
    (``Σ_ij S^C_ij S^L_ij = ||Z^Cᵀ Z^L||_F²``), so the cost is O(N·d²). The two sides may have different d.
    """
    _check_rows("z_cf", z_cf, min_rows=2)
    _check_rows("z_llm", z_llm, min_rows=2)
    if z_cf.shape[0] != z_llm.shape[0]:
        raise ValueError(f"z_cf has {z_cf.shape[0]} rows but z_llm has {z_llm.shape[0]}")
    if mode not in GLOBAL_MODES:
        raise ValueError(f"mode must be one of {GLOBAL_MODES}, got {mode!r}")
    zc, zl = _norm(z_cf), _norm(z_llm)
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
    var_c = ((cc - n) / pairs - m_c * m_c).clamp_min(0.0)
    var_l = ((ll - n) / pairs - m_l * m_l).clamp_min(0.0)
    cov = (cl - n) / pairs - m_c * m_l
    if mode == "centered":
        return (var_c + var_l - 2.0 * cov).clamp_min(0.0)
    # eps keeps a fully collapsed side (std 0) finite instead of NaN
    corr = cov / torch.sqrt((var_c + 1e-12) * (var_l + 1e-12))
    return (2.0 - 2.0 * corr).clamp(0.0, 4.0)


def _sample_index(weights: torch.Tensor, generator: Optional[torch.Generator]) -> int:
    # multinomial needs the generator and the tensor on the same device
    if generator is not None and weights.device != generator.device:
        weights = weights.to(generator.device)
    return int(torch.multinomial(weights, 1, generator=generator).item())


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    # direct differences, not the ||a||²+||b||²−2ab expansion: distinct nearby points keep d > 0
    return (x.unsqueeze(1) - c.unsqueeze(0)).pow(2).sum(-1)


def _kmeanspp(x: torch.Tensor, k: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    n = x.shape[0]
    first = _sample_index(torch.ones(n, dtype=x.dtype, device=x.device), generator)
    centres = [x[first]]
    d2 = _sq_dist(x, x[first : first + 1]).squeeze(1)
    for _ in range(1, k):
        # enough distinct points were checked, so some d2 > 0
        idx = _sample_index(d2, generator)
        centres.append(x[idx])
        d2 = torch.minimum(d2, _sq_dist(x, x[idx : idx + 1]).squeeze(1))
    return torch.stack(centres)


@torch.no_grad()
def kmeans(
    x: torch.Tensor,
    k: int,
    iters: int = 10,
    init: Union[str, torch.Tensor] = "kmeans++",
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's K-means in torch on x's device, without gradient.

    Args:
        x: (N, d) points (pass normalised rows for spherical-style clustering).
        k: number of clusters, ≥ 2.
        iters: Lloyd iterations (assign, update), ≥ 1.
        init: ``'kmeans++'`` (D² sampling), ``'random'`` (k distinct random points) or a (k, d) tensor of
            starting centres (warm start from the previous step).
        generator: torch.Generator for reproducible seeding (may live on another device than x).

    Returns:
        labels (N,) long in [0, k) and centres (k, d) in x's dtype (float32 for half inputs).

    A cluster that becomes empty during an update is re-seeded with the point farthest from its own centre
    (distinct points for several empties), so no NaN is ever produced; in degenerate ties the final labels
    may still leave a cluster empty, which :func:`cluster_centres` reports in its validity mask.

    Raises:
        ValueError: k < 2 or iters < 1; :class:`TooFewPointsError` (a ValueError) when x has fewer distinct
            rows than k (the message gives both numbers).
    """
    if k < 2:
        raise ValueError(f"k (number of clusters) must be >= 2, got {k}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    _check_rows("x", x)
    x = x.detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    n_distinct = torch.unique(x, dim=0).shape[0]
    if n_distinct < k:
        raise TooFewPointsError(
            f"k={k} clusters need at least k distinct points, got {n_distinct} distinct of {x.shape[0]} rows"
        )
    if isinstance(init, torch.Tensor):
        if init.shape != (k, x.shape[1]):
            raise ValueError(f"init centres must have shape {(k, x.shape[1])}, got {tuple(init.shape)}")
        centres = init.detach().to(device=x.device, dtype=x.dtype).clone()
    elif init == "kmeans++":
        centres = _kmeanspp(x, k, generator)
    elif init == "random":
        uniq = torch.unique(x, dim=0)
        dev = generator.device if generator is not None else uniq.device
        pick = torch.randperm(uniq.shape[0], generator=generator, device=dev)[:k].to(uniq.device)
        centres = uniq[pick].clone()
    else:
        raise ValueError(f"init must be 'kmeans++', 'random' or a (k, d) tensor, got {init!r}")

    for _ in range(iters):
        d2 = _sq_dist(x, centres)
        labels = d2.argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        empty = counts == 0
        centres = torch.where(empty.unsqueeze(1), centres, sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype))
        n_empty = int(empty.sum())
        if n_empty:
            own = _sq_dist(x, centres).gather(1, labels.unsqueeze(1)).squeeze(1)
            far = own.topk(n_empty).indices
            centres[empty] = x[far]
    labels = _sq_dist(x, centres).argmin(1)
    return labels, centres


def cluster_centres(x: torch.Tensor, labels: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Differentiable cluster means.

    ``P_k = mean_{i: labels_i = k} x_i``; an empty cluster gets a zero row.
    Returns (centres (k, d), valid (k,) bool = cluster non-empty). Gradient flows to x.
    """
    _check_rows("x", x)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
    sums = x.new_zeros(k, x.shape[1]).index_add(0, labels, x)
    counts = torch.bincount(labels, minlength=k)[:k]
    return sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype), counts > 0


def match_clusters(p_cf: torch.Tensor, p_llm: torch.Tensor) -> torch.Tensor:
    """Adaptive one-to-one matching of centres (Hungarian algorithm).

    Maximises ``Σ_k cos(p_cf_k, p_llm_π(k))`` over permutations π of the K×K cosine matrix
    (scipy ``linear_sum_assignment``). Returns π as a LongTensor (K,) on p_cf's device:
    CF centre k is matched with LLM centre π[k]. Zero (empty-cluster) centres have cosine 0 with everything.
    """
    if p_cf.shape != p_llm.shape:
        raise ValueError(f"p_cf {tuple(p_cf.shape)} and p_llm {tuple(p_llm.shape)} must have the same shape")
    cos = (_norm(p_cf.detach().double()) @ _norm(p_llm.detach().double()).t()).cpu().numpy()
    rows, cols = linear_sum_assignment(cos, maximize=True)
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(p_cf.device)


def local_structure_loss(
    z_cf: torch.Tensor,
    z_llm: torch.Tensor,
    k: int,
    mode: str = "mse",
    tau: float = 0.2,
    iters: int = 10,
    generator: Optional[torch.Generator] = None,
    init: str = "kmeans++",
) -> LocalAlignment:
    """Local (preference-centre) alignment.

    1. K-means (no grad) on the normalised rows of each side separately: labels^C, labels^L.
    2. Differentiable centres P^C, P^L = member means of the normalised rows (:func:`cluster_centres`).
    3. π = :func:`match_clusters` (P^C, P^L).
    4. ``'mse'``: ``mean_{k valid} ||p̂^C_k − p̂^L_π(k)||²`` (p̂ = normalised centres), where valid pairs are
       non-empty on both sides. ``'infonce'``: InfoNCE over valid centres, logits ``p̂^C_k·p̂^L_j / tau``,
       the matched π(k) is the positive and the other valid LLM centres are negatives.

    Args:
        z_cf, z_llm: (N, d') rows of the same N nodes on both sides (raw shared projections, same width).
        k: clusters per side; iters, init, generator: passed to :func:`kmeans`; tau: InfoNCE temperature.
    Raises:
        ValueError for a bad mode/tau/k; :class:`TooFewPointsError` when a side has < k distinct rows.
    """
    if mode not in LOCAL_MODES:
        raise ValueError(f"mode must be one of {LOCAL_MODES}, got {mode!r}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if z_cf.shape != z_llm.shape:  # centres are compared directly, so widths must agree
        raise ValueError(f"z_cf {tuple(z_cf.shape)} and z_llm {tuple(z_llm.shape)} must have the same shape")
    zc, zl = _norm(z_cf), _norm(z_llm)
    lab_c, _ = kmeans(zc, k, iters=iters, init=init, generator=generator)
    lab_l, _ = kmeans(zl, k, iters=iters, init=init, generator=generator)
    p_c, val_c = cluster_centres(zc, lab_c, k)
    p_l, val_l = cluster_centres(zl, lab_l, k)
    perm = match_clusters(p_c, p_l)
    valid = val_c & val_l[perm]
    pc, pl = _norm(p_c), _norm(p_l)
    if not bool(valid.any()):
        return LocalAlignment(z_cf.sum() * 0.0, lab_c, lab_l, perm, valid)
    if mode == "mse":
        loss = (pc[valid] - pl[perm[valid]]).pow(2).sum(-1).mean()
    else:
        cols = torch.nonzero(val_l).squeeze(1)  # valid LLM centres are the candidates
        logits = pc[valid] @ pl[cols].t() / tau
        target = torch.searchsorted(cols, perm[valid])  # position of π(k) among the candidates
        loss = F.cross_entropy(logits, target)
    return LocalAlignment(loss, lab_c, lab_l, perm, valid)


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Cosine InfoNCE with in-batch negatives (RLMRec-Con / RLMRec-Gen).

    ``L = −mean_i log( exp(â_i·b̂_i/τ) / Σ_j exp(â_i·b̂_j/τ) )``: row i of ``a`` must pick row i of ``b``
    among all rows of b. a and b are (N, d) with the same d.
    """
    _check_rows("a", a)
    if a.shape != b.shape:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} differ in shape")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = _norm(a) @ _norm(b).t() / tau
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


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
