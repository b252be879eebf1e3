"""K-means in torch, differentiable cluster centres and Hungarian matching (DaRec's local alignment).

RecBole-independent: plain tensors in, tensors out. K-means runs without gradient on the rows' device; the
centres that enter a loss are recomputed from the labels with gradient (:func:`cluster_centres`).
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._util import check_rows, norm_rows

__all__ = ["TooFewPointsError", "kmeans", "cluster_centres", "match_clusters"]


class TooFewPointsError(ValueError):
    """Raised by :func:`kmeans` when there are fewer distinct points than clusters."""


def _too_few(x: torch.Tensor, k: int) -> TooFewPointsError:
    n_distinct = torch.unique(x, dim=0).shape[0]  # only on the error path: unique(dim=0) sorts every row
    return TooFewPointsError(
        f"k={k} clusters need at least k distinct points, got {n_distinct} distinct of {x.shape[0]} rows")


def _draw(weights: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """One index drawn ∝ weights, as a (1,) tensor on the weights' device (no read-back to the host)."""
    # multinomial needs the generator and the tensor on the same device
    dev = generator.device if generator is not None else weights.device
    return torch.multinomial(weights.to(dev), 1, generator=generator).to(weights.device)


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    # direct differences, not the ||a||²+||b||²−2ab expansion: distinct nearby points keep d > 0
    return (x.unsqueeze(1) - c.unsqueeze(0)).pow(2).sum(-1)


def _nearest(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    # argmin_k ||x - c_k||² = argmax_k (x·c_k - ||c_k||²/2): one (N, d) x (d, K) product per set instead of N·K·d
    # differences; ties between exactly equidistant centres may break differently, which Lloyd tolerates.
    # x (B, N, d), c (B, K, d) -> (B, N)
    return (x @ c.transpose(1, 2) - 0.5 * c.pow(2).sum(2).unsqueeze(1)).argmax(2)


def _kmeanspp(x: torch.Tensor, k: int, generator: Optional[torch.Generator],
              wait: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """k-means++ (D² sampling) seeds of the (N, d) points x: (centres (k, d), a 0-d bool tensor 'fewer distinct
    points than k'). wait=True raises :class:`TooFewPointsError` as soon as every point coincides with a chosen
    centre (a read-back before each draw); wait=False never reads back: a degenerate distance vector is replaced by
    uniform weights, so that multinomial never sees an all-zero row (a device-side assert on CUDA), and the flag
    reports it for the caller to check once. The same draws from the same generator either way."""
    n = x.shape[0]
    first = _draw(torch.ones(n, dtype=x.dtype, device=x.device), generator)
    centres = [x[first].squeeze(0)]
    d2 = _sq_dist(x, x[first]).squeeze(1)
    degenerate = torch.zeros((), dtype=torch.bool, device=x.device)
    for _ in range(1, k):
        exhausted = d2.max() <= 0
        if wait and bool(exhausted):  # every point coincides with a chosen centre: fewer distinct points than k
            raise _too_few(x, k)
        degenerate = degenerate | exhausted
        idx = _draw(torch.where(exhausted, torch.ones_like(d2), d2), generator)
        centres.append(x[idx].squeeze(0))
        d2 = torch.minimum(d2, _sq_dist(x, x[idx]).squeeze(1))
    return torch.stack(centres), degenerate


@torch.no_grad()
def kmeans(
    x: torch.Tensor,
    k: int,
    iters: int = 10,
    init: Union[str, torch.Tensor] = "kmeans++",
    generator: Optional[torch.Generator] = None,
    sync_free: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's K-means in torch on x's device, without gradient.

    Args:
        x: (N, d) points (pass normalised rows for spherical-style clustering), or (B, N, d): B independent
            point sets clustered in one batched loop (the DaRec head's two sides), each exactly as alone.
        k: number of clusters, ≥ 2.
        iters: Lloyd iterations (assign, update), ≥ 1; fewer run when the labels stop changing (a fixed point:
            further iterations would return the same labels and centres).
        init: ``'kmeans++'`` (D² sampling), ``'random'`` (k distinct random points) or a (k, d) tensor -- (B, k, d)
            for batched x -- of starting centres (warm start from the previous step). Sets are seeded in order.
        generator: torch.Generator for reproducible seeding (may live on another device than x).
        sync_free: False (default): the loop reads small results back to the host (the fixed-point check, the
            empty-cluster test, each k-means++ draw), which is free on a CPU, where the early stop saves work.
            True: it never waits for the device: every iteration runs (no early stop at a fixed point, which would
            return the same labels and centres), empty clusters are re-seeded with masked tensor ops and k-means++
            keeps its draws on the device, checked for too few distinct points once at the end. Meant for GPUs,
            where each wait stalls the launch queue; the same results (bit for bit on a CPU; a GPU's atomic sums
            may differ in the last bits). Not yet the default on CUDA: its speed there is unmeasured
            (benchmarks/darec_overhead.py times both on a GPU). A generator on another device than x still costs
            a copy per draw.

    Returns:
        labels (N,) long in [0, k) and centres (k, d) in x's dtype (float32 for half inputs); (B, N) and
        (B, k, d) for batched x.

    A cluster that becomes empty during an update is re-seeded with the point farthest from its own centre
    (distinct points for several empties), so no NaN is ever produced; in degenerate ties the final labels
    may still leave a cluster empty, which :func:`cluster_centres` reports in its validity mask.

    Raises:
        ValueError: k < 2 or iters < 1; :class:`TooFewPointsError` (a ValueError) when x has fewer distinct
            rows than k (the message gives both numbers). With a tensor ``init`` distinctness is not checked
            (a warm start must not pay for it); duplicate-only data then ends with empty clusters instead.
    """
    if k < 2:
        raise ValueError(f"k (number of clusters) must be >= 2, got {k}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    batched = x.dim() == 3
    if not batched:
        check_rows("x", x)
    elif x.shape[1] < 1:
        raise ValueError(f"x needs at least 1 row per set, got shape {tuple(x.shape)}")
    x = (x if batched else x.unsqueeze(0)).detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if x.shape[1] < k:
        raise _too_few(x[0], k)
    if isinstance(init, torch.Tensor):
        expected = (x.shape[0], k, x.shape[2]) if batched else (k, x.shape[2])
        if tuple(init.shape) != expected:
            raise ValueError(f"init centres must have shape {expected}, got {tuple(init.shape)}")
        centres = init.detach().to(device=x.device, dtype=x.dtype).reshape(x.shape[0], k, x.shape[2]).clone()
    elif init == "kmeans++" and sync_free:
        seeded = [_kmeanspp(points, k, generator, wait=False) for points in x]
        degenerate = torch.stack([flag for _, flag in seeded])
        if bool(degenerate.any()):  # the one wait of the seeding
            raise _too_few(x[int(degenerate.int().argmax())], k)
        centres = torch.stack([c for c, _ in seeded])
    elif init in ("kmeans++", "random"):
        centres = torch.stack([_seed(points, k, init, generator) for points in x])
    else:
        raise ValueError(f"init must be 'kmeans++', 'random' or a (k, d) tensor, got {init!r}")
    labels, centres = (_lloyd_on_device if sync_free else _lloyd)(x, centres, iters)
    return (labels, centres) if batched else (labels[0], centres[0])


def _seed(x: torch.Tensor, k: int, init: str, generator: Optional[torch.Generator]) -> torch.Tensor:
    """k starting centres for the (N, d) points x."""
    if init == "kmeans++":
        return _kmeanspp(x, k, generator)[0]
    uniq = torch.unique(x, dim=0)
    if uniq.shape[0] < k:
        raise _too_few(x, k)
    dev = generator.device if generator is not None else uniq.device
    pick = torch.randperm(uniq.shape[0], generator=generator, device=dev)[:k].to(uniq.device)
    return uniq[pick].clone()


def _update(flat_x: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor,
            offset: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """One Lloyd update of B sets at once: each centre becomes the mean of its points; an empty cluster keeps its
    centre (the caller re-seeds it). flat_x (B·N, d), centres (B, k, d), labels (B, N) -> centres, empty (B, k)."""
    n_sets, k, d = centres.shape
    slots = (labels + offset).flatten()  # set b's clusters are rows b·k .. b·k+k-1
    sums = centres.new_zeros(n_sets * k, d).index_add_(0, slots, flat_x).view_as(centres)
    counts = torch.bincount(slots, minlength=n_sets * k).view(n_sets, k)
    empty = counts == 0
    return torch.where(empty.unsqueeze(2), centres, sums / counts.clamp_min(1).unsqueeze(2).to(flat_x.dtype)), empty


def _lloyd(x: torch.Tensor, centres: torch.Tensor, iters: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations on B point sets at once: x (B, N, d), centres (B, k, d) -> labels (B, N), centres."""
    n_sets, n, _ = x.shape
    k = centres.shape[1]
    offset = (torch.arange(n_sets, device=x.device) * k).unsqueeze(1)  # set b's clusters are rows b·k .. b·k+k-1
    flat_x = x.reshape(n_sets * n, -1)
    previous = None
    for _ in range(iters):
        labels = _nearest(x, centres)
        if previous is not None and torch.equal(labels, previous):
            # a fixed point: the previous update had no empty cluster, so the centres are the means of these very
            # labels; every further iteration would reproduce them bit for bit, so stop with the same result
            return labels, centres
        centres, empty = _update(flat_x, centres, labels, offset)
        has_empty = bool(empty.any())
        previous = None if has_empty else labels
        if has_empty:
            for b in torch.nonzero(empty.any(1)).flatten().tolist():
                own = _sq_dist(x[b], centres[b]).gather(1, labels[b].unsqueeze(1)).squeeze(1)
                centres[b, empty[b]] = x[b, own.topk(int(empty[b].sum())).indices]
    return _nearest(x, centres), centres


def _lloyd_on_device(x: torch.Tensor, centres: torch.Tensor, iters: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`_lloyd` without a host round trip: all ``iters`` iterations run, and the i-th empty cluster of a set
    takes the set's i-th farthest point from its own centre (what :func:`_lloyd` does) through a mask."""
    n_sets, n, _ = x.shape
    k = centres.shape[1]
    offset = (torch.arange(n_sets, device=x.device) * k).unsqueeze(1)
    flat_x = x.reshape(n_sets * n, -1)
    sets = torch.arange(n_sets, device=x.device).unsqueeze(1)
    for _ in range(iters):
        labels = _nearest(x, centres)
        centres, empty = _update(flat_x, centres, labels, offset)
        # re-seeding as _lloyd does, computed whether or not a cluster is empty (the mask then keeps every centre)
        own = (x - centres.gather(1, labels.unsqueeze(2).expand_as(x))).pow(2).sum(2)  # (B, N)
        farthest = own.topk(min(k, n), dim=1).indices  # (B, min(k, N)); n >= k is checked by kmeans
        rank = (empty.cumsum(1) - 1).clamp_min(0)  # the i-th empty cluster of a set takes its i-th farthest point
        centres = torch.where(empty.unsqueeze(2), x[sets, farthest.gather(1, rank)], centres)
    return _nearest(x, centres), centres


def cluster_centres(x: torch.Tensor, labels: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Differentiable cluster means.

    ``P_k = mean_{i: labels_i = k} x_i``; an empty cluster gets a zero row.
    Returns (centres (k, d), valid (k,) bool = cluster non-empty). Gradient flows to x.
    """
    check_rows("x", x)
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
    cos = (norm_rows(p_cf.detach().double()) @ norm_rows(p_llm.detach().double()).t()).cpu().numpy()
    rows, cols = linear_sum_assignment(cos, maximize=True)
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(p_cf.device)
