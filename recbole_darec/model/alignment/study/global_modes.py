"""Study alternatives of DaRec's global term (the shipped one is ``losses.crossview_loss``; the contrastive
cross-view alternative ``crossview_nce`` is ``losses.info_nce`` of each node's two views, dispatched there).

Each side's similarity matrix ``S = Z Zᵀ`` (Z: the row-normalised inputs, N×N) is compared with the other side's:

* ``mse`` (the literal paper): ``mean_{ij} (S^C_ij − S^L_ij)²`` over all N² entries.
* ``centered``: off-diagonal entries only, each side minus its mean off-diagonal similarity m:
  ``mean_{i≠j} ((S^C_ij − m^C) − (S^L_ij − m^L))²``. A uniformly high-cosine (anisotropic) LLM side no longer asks
  the CF side to make all rows alike.
* ``standardized``: as 'centered' but each side also divided by its off-diagonal std s:
  ``2 − 2·corr(S^C, S^L)``, invariant to any affine rescaling of either side's similarities. Range [0, 4].
* ``neighbors``: ``mean_i KL(P^L_i || P^C_i)`` with ``P_i = softmax_{j≠i}(S_ij / tau)``, the LLM side the teacher
  (no gradient through it): a node's closest LLM neighbours should become close in the CF space too. Materialises
  two N×N matrices, O(N²·d).

The three MSE modes never materialise an N×N matrix: they use d×d Gram matrices
(``Σ_ij S^C_ij S^L_ij = ||Z^Cᵀ Z^L||_F²``), O(N·d²); the two sides may have different widths.

``USER_ITEM_BLOCK`` (``global_pairs: cross``) compares only the block rows ``[:n_first]`` (Ω's users) × rows
``[n_first:]`` (its items) of S, a content-based ranking on the LLM side: the moments run over those pairs (no
diagonal); 'neighbors' takes each user's softmax over the items and each item's over the users.

Every function takes unit rows ``zc`` (N, d), ``zl`` (N, d_L); ``tau`` is read by 'neighbors' only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ALL_PAIRS", "USER_ITEM_BLOCK"]


def mse(zc: torch.Tensor, zl: torch.Tensor, tau: float) -> torch.Tensor:
    n = zc.shape[0]
    cc, ll, cl = _gram_sums(zc, zl)
    return ((cc + ll - 2.0 * cl) / (n * n)).clamp_min(0.0)


def centered(zc: torch.Tensor, zl: torch.Tensor, tau: float) -> torch.Tensor:
    return _centered(*_off_diagonal_moments(zc, zl))


def standardized(zc: torch.Tensor, zl: torch.Tensor, tau: float) -> torch.Tensor:
    return _standardized(*_off_diagonal_moments(zc, zl))


def neighbors(zc: torch.Tensor, zl: torch.Tensor, tau: float) -> torch.Tensor:
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    off_diagonal = ~torch.eye(zc.shape[0], dtype=torch.bool, device=zc.device)
    with torch.no_grad():
        teacher = F.log_softmax((zl @ zl.t() / tau).masked_fill(~off_diagonal, float("-inf")), dim=1)
    student = F.log_softmax((zc @ zc.t() / tau).masked_fill(~off_diagonal, float("-inf")), dim=1)
    # KL(P^L || P^C) per row; the diagonal (log 0 on both sides) is excluded
    kl = torch.where(off_diagonal, teacher.exp() * (teacher - student), torch.zeros_like(student))
    return kl.sum(1).mean()


def block_mse(zc: torch.Tensor, zl: torch.Tensor, tau: float, n_first: int) -> torch.Tensor:
    cc, ll, cl, _, _ = _block_moments(zc, zl, n_first)
    return (cc + ll - 2.0 * cl).clamp_min(0.0)


def block_centered(zc: torch.Tensor, zl: torch.Tensor, tau: float, n_first: int) -> torch.Tensor:
    return _centered(*_block_moments(zc, zl, n_first))


def block_standardized(zc: torch.Tensor, zl: torch.Tensor, tau: float, n_first: int) -> torch.Tensor:
    return _standardized(*_block_moments(zc, zl, n_first))


def block_neighbors(zc: torch.Tensor, zl: torch.Tensor, tau: float, n_first: int) -> torch.Tensor:
    (cu, ci), (lu, li) = _split(zc, zl, n_first)
    if min(len(cu), len(ci)) < 2:  # a softmax over one candidate carries no gradient
        return zc.sum() * 0.0
    teacher = (lu @ li.t() / tau).detach()
    student = cu @ ci.t() / tau
    return 0.5 * (_kl_rows(teacher, student) + _kl_rows(teacher.t(), student.t()))


ALL_PAIRS = {"mse": mse, "centered": centered, "standardized": standardized, "neighbors": neighbors}
USER_ITEM_BLOCK = {"mse": block_mse, "centered": block_centered, "standardized": block_standardized,
                   "neighbors": block_neighbors}


# --- helpers ---------------------------------------------------------------------------------------------------
def _gram_sums(zc, zl):
    """Σ_ij (S^C_ij)², Σ_ij (S^L_ij)², Σ_ij S^C_ij S^L_ij over all N² entries, from d×d Gram matrices."""
    return (zc.t() @ zc).pow(2).sum(), (zl.t() @ zl).pow(2).sum(), (zc.t() @ zl).pow(2).sum()


def _off_diagonal_moments(zc, zl):
    """Means over i≠j of (S^C)², (S^L)², S^C·S^L, S^C and S^L: the diagonals are exactly 1 for unit rows."""
    n = zc.shape[0]
    cc, ll, cl = _gram_sums(zc, zl)
    pairs = n * (n - 1)
    m_c = (zc.sum(0).pow(2).sum() - n) / pairs
    m_l = (zl.sum(0).pow(2).sum() - n) / pairs
    return (cc - n) / pairs, (ll - n) / pairs, (cl - n) / pairs, m_c, m_l


def _split(zc, zl, n_first):
    n = zc.shape[0]
    if not 1 <= n_first < n:
        raise ValueError(f"n_first must leave >= 1 row on each side of the cross block, got {n_first} of {n}")
    return (zc[:n_first], zc[n_first:]), (zl[:n_first], zl[n_first:])


def _block_moments(zc, zl, n_first):
    """The same five means over the users × items block (Σ_ui S^C_ui S^L_ui = <Cuᵀ Lu, Ciᵀ Li>_F: no N_u×N_i matrix)."""
    (cu, ci), (lu, li) = _split(zc, zl, n_first)
    pairs = n_first * (zc.shape[0] - n_first)
    cc = ((cu.t() @ cu) * (ci.t() @ ci)).sum() / pairs
    ll = ((lu.t() @ lu) * (li.t() @ li)).sum() / pairs
    cl = ((cu.t() @ lu) * (ci.t() @ li)).sum() / pairs
    return cc, ll, cl, cu.sum(0) @ ci.sum(0) / pairs, lu.sum(0) @ li.sum(0) / pairs


def _variances(cc, ll, cl, m_c, m_l):
    return (cc - m_c * m_c).clamp_min(0.0), (ll - m_l * m_l).clamp_min(0.0), cl - m_c * m_l


def _centered(cc, ll, cl, m_c, m_l):
    var_c, var_l, cov = _variances(cc, ll, cl, m_c, m_l)
    return (var_c + var_l - 2.0 * cov).clamp_min(0.0)


def _standardized(cc, ll, cl, m_c, m_l):
    var_c, var_l, cov = _variances(cc, ll, cl, m_c, m_l)
    # eps keeps a fully collapsed side (std 0) finite instead of NaN
    corr = cov / torch.sqrt((var_c + 1e-12) * (var_l + 1e-12))
    return (2.0 - 2.0 * corr).clamp(0.0, 4.0)


def _kl_rows(teacher_logits, student_logits):
    """mean_i KL(softmax(teacher_i) || softmax(student_i))."""
    log_t, log_s = F.log_softmax(teacher_logits, dim=1), F.log_softmax(student_logits, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1).mean()
