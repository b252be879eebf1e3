"""DaRec alignment head (Yang et al., "A Disentangled Alignment Framework for Large Language Model and
Recommender System", arXiv 2408.08231); the method and its departures: docs/method.md.

The head owns the four disentangling projectors and turns already-sampled CF rows and their frozen LLM rows
into four weighted loss terms. It knows nothing about RecBole or the backbone: a model gathers the rows of
``sample_nodes(...)`` from its final embeddings and the LLM table, calls the head, and adds the returned
terms to its loss tuple.

Its parameters are the settings a user tunes (λ, K, N̂, d', term weights, uniformity temperature, regulariser
sample, K-means iterations, the degree decay d1). The shipped departures from the literal paper, and the
alternatives the studies measured, are one :class:`DaRecStudyModes` value (``study/modes.py``); its defaults are
the shipped behaviour:

* the CF *shared* projector is a fixed random isometry (a trained map would meet the alignment itself);
* the global term is cross-view and contrastive (each node's CF shared view picks its own LLM shared view among
  its group's, InfoNCE), one term per group of Ω; the model passes the groups (the batch's users, positive items
  and sampled negative items) and how often the batch uses each node;
* an optional per-node decay of the structure gradient, d1/(d1 + training degree) (``degree_decay``, off by
  default);
* orthogonality, uniformity and the local (cluster-centre) term train the projectors only;
* the sampled LLM rows are centred before projecting (sentence embeddings are anisotropic).
"""
from __future__ import annotations

import itertools
import logging
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._util import randperm
from .coupling import normalize_grad, scale_grad
from .losses import (
    LocalAlignment, TooFewPointsError, global_structure_loss, kmeans, local_structure_loss, orthogonality_loss,
    uniformity_losses,
)
from .projectors import cf_projector as make_cf_projector, llm_projector
from .study.modes import DaRecStudyModes

__all__ = ["DaRecHead", "DARec_TERMS"]

DARec_TERMS = ("darec_global", "darec_local", "darec_orth", "darec_unif")


class DaRecHead(nn.Module):
    """Disentangled alignment of CF and LLM representations, as a loss head.

    Args:
        d_cf: width d of the CF embeddings E^C.
        d_llm: width d_L of the frozen LLM embeddings E^L.
        d_proj: width d' of the shared/specific projections; ``None`` -> d_cf.
        lam: trade-off λ ≥ 0 multiplying every term (0 switches the head off: zero terms, no graph).
        n_clusters: K for the local alignment, 2 ≤ K ≤ sample_size.
        sample_size: N̂, the cap on sampled nodes per step (used by :meth:`sample_nodes`), ≥ 2.
        w_global, w_local, w_orth, w_unif: per-term weights ≥ 0 (0 skips the term's computation).
        reg_sample: compute the regularisers (uniformity, orthogonality) on a random subset of this many rows
            of Ω (bounds uniformity's O(N²) cost and the specific projectors' cost); ``None`` -> all rows.
        unif_t: uniformity temperature t > 0.
        kmeans_iters: Lloyd iterations per side per call.
        degree_decay: d1 ≥ 0; the structure gradient into row i's CF embedding is multiplied by
            ``d1 / (d1 + deg_i)`` (the caller passes each row's training degree): a node the graph knows well
            (deg ≫ d1) takes little from the LLM side, a cold one up to all of it, so one setting serves sparse and
            dense data. 0 = off.
        study: the departures and study alternatives (:class:`DaRecStudyModes`); ``None`` -> the shipped ones.

    Raises:
        ValueError naming the parameter and its value for any invalid setting.
    """

    def __init__(
        self,
        d_cf: int,
        d_llm: int,
        d_proj: Optional[int] = None,
        lam: float = 0.01,
        n_clusters: int = 4,
        sample_size: int = 4096,
        w_global: float = 1.0,
        w_local: float = 1.0,
        w_orth: float = 1.0,
        w_unif: float = 1.0,
        reg_sample: Optional[int] = 512,
        unif_t: float = 2.0,
        kmeans_iters: int = 10,
        degree_decay: float = 0.0,
        study: Optional[DaRecStudyModes] = None,
    ):
        super().__init__()
        # parameters
        d_proj = d_cf if d_proj is None else d_proj
        for name, value in (("d_cf", d_cf), ("d_llm", d_llm), ("d_proj", d_proj), ("n_clusters", n_clusters),
                            ("sample_size", sample_size), ("kmeans_iters", kmeans_iters)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
        for name, value in (("d_cf", d_cf), ("d_llm", d_llm), ("d_proj", d_proj), ("kmeans_iters", kmeans_iters)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("lam", lam), ("degree_decay", degree_decay), ("w_global", w_global),
                            ("w_local", w_local), ("w_orth", w_orth), ("w_unif", w_unif)):
            if not math.isfinite(float(value)) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not math.isfinite(float(unif_t)) or unif_t <= 0:
            raise ValueError(f"unif_t must be > 0, got {unif_t!r}")
        if n_clusters < 2:
            raise ValueError(f"n_clusters (K) must be >= 2, got {n_clusters}")
        if sample_size < 2:
            raise ValueError(f"sample_size (N̂) must be >= 2, got {sample_size}")
        if n_clusters > sample_size:
            raise ValueError(f"n_clusters (K={n_clusters}) must not exceed sample_size (N̂={sample_size})")
        if reg_sample is not None and (not isinstance(reg_sample, int) or isinstance(reg_sample, bool)
                                       or reg_sample < 2):
            raise ValueError(f"reg_sample must be None or an int >= 2, got {reg_sample!r}")
        if study is not None and not isinstance(study, DaRecStudyModes):
            raise ValueError(f"study must be a DaRecStudyModes, got {type(study).__name__}")
        self.study = study = DaRecStudyModes() if study is None else study
        self.d_cf, self.d_llm, self.d_proj = d_cf, d_llm, d_proj
        self.lam, self.n_clusters, self.sample_size = float(lam), n_clusters, sample_size
        self.weights = {"darec_global": float(w_global), "darec_local": float(w_local),
                        "darec_orth": float(w_orth), "darec_unif": float(w_unif)}
        self.reg_sample, self.unif_t, self.kmeans_iters = reg_sample, float(unif_t), kmeans_iters
        self.degree_decay = float(degree_decay)
        # share of λ the text earns on this dataset (text_trust.py); the model sets it from the training graph
        self.trust = 1.0

        # layers: one projector per side and part, shared by users and items
        self.cf_shared = make_cf_projector(d_cf, d_proj, study.cf_projector)
        specific_shape = "mlp" if study.cf_projector == "isometry" else study.cf_projector
        self.cf_specific = make_cf_projector(d_cf, d_proj, specific_shape)
        self.llm_shared = llm_projector(d_llm, d_proj)
        self.llm_specific = llm_projector(d_llm, d_proj)

        # caches: python-side step counter (saved via extra_state, no device sync), last local result and the
        # K-means centres a warm start continues from (not saved: a resumed run re-seeds once)
        self._step = 0
        self.last_local: Optional[LocalAlignment] = None
        self._warm_centres: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self._warned_few_points = False  # one warning per run when a batch cannot supply K distinct nodes
        # whether something reads C_sp (the model sets it when it scores with [C_sh || C_sp]): see
        # cf_regularizers_matter
        self.cf_specific_read = False

    # --- state -------------------------------------------------------------------------------------------
    def get_extra_state(self):
        return {"step": self._step}

    def set_extra_state(self, state):
        self._step = int(state.get("step", 0))

    @property
    def needs_degree(self) -> bool:
        """Whether :meth:`forward` uses the rows' training degrees (degree_coupling or degree_decay is on)."""
        return bool(self.study.degree_coupling or self.degree_decay)

    def effective_lambda(self) -> float:
        """λ times the text's trust, after warm-up, for the current step."""
        return self.study.lambda_at(self.lam * self.trust, self._step)

    def _couple(self, cf: torch.Tensor, lam: float, backbone_grad_norm: Optional[torch.Tensor],
                degree: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The CF rows as the structure terms see them: same values, gradient into E^C per structure_grad_scale
        (and per row by degree_coupling / degree_decay)."""
        if degree is not None and self.needs_degree:
            deg = degree.to(cf.dtype)
            weight = torch.ones_like(deg)
            if self.study.degree_coupling:
                weight = weight + self.study.degree_coupling / deg.clamp_min(1.0)
            if self.degree_decay:
                weight = weight * (self.degree_decay / (self.degree_decay + deg))
            cf = scale_grad(cf, weight.unsqueeze(1))
        s = self.study.structure_grad_scale
        if s == "relative":
            if backbone_grad_norm is None:
                raise ValueError("structure_grad_scale='relative' needs backbone_grad_norm (the ranking loss's "
                                 "gradient norm on these rows)")
            return normalize_grad(cf, lam * backbone_grad_norm)
        if s == "auto":
            return scale_grad(cf, cf.detach().pow(2).sum(-1).mean().clamp_max(1.0))
        return scale_grad(cf, 1.0 if s == "none" else float(s))

    # --- sampling ----------------------------------------------------------------------------------------
    @staticmethod
    def sample_nodes(
        user_ids: torch.Tensor,
        item_ids: torch.Tensor,
        sample_size: int,
        generator: Optional[torch.Generator] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Ω: the batch's unique users and items, uniformly sub-sampled to at most ``sample_size`` in total.

        Args:
            user_ids: the batch's user ids (any shape, duplicates allowed).
            item_ids: the batch's (positive) item ids.
            sample_size: N̂ ≥ 2.
            generator: for reproducible sub-sampling.
        Returns:
            (users, items): sorted unique LongTensors on user_ids' device; len(users)+len(items) ≤ N̂.
        """
        (users, items), _ = DaRecHead.sample_groups((user_ids, item_ids), sample_size, generator)
        return users, items

    @staticmethod
    def sample_groups(
        groups: Sequence[torch.Tensor],
        sample_size: int,
        generator: Optional[torch.Generator] = None,
    ) -> Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]:
        """Ω as the ranking loss uses the batch: each group (e.g. its users, positive items, sampled negative items)
        reduced to its unique ids, each with how often the batch uses it; at most ``sample_size`` rows in total,
        uniformly sub-sampled over all groups' rows when there are more.

        Returns:
            (ids per group, counts per group): sorted unique LongTensors and their counts (> 0), on the ids' device.
        """
        if sample_size < 2:
            raise ValueError(f"sample_size (N̂) must be >= 2, got {sample_size}")
        ids, counts = zip(*(torch.unique(g.flatten(), return_counts=True) for g in groups))
        sizes = [len(g) for g in ids]
        if sum(sizes) <= sample_size:
            return ids, counts
        device = ids[0].device
        pick = randperm(sum(sizes), generator, device)[:sample_size].sort().values
        out_ids, out_counts, start = [], [], 0
        for group_ids, group_counts, size in zip(ids, counts, sizes):
            local = pick[(pick >= start) & (pick < start + size)] - start
            out_ids.append(group_ids[local])
            out_counts.append(group_counts[local])
            start += size
        return tuple(out_ids), tuple(out_counts)

    # --- losses ------------------------------------------------------------------------------------------
    def forward(
        self,
        cf_emb: torch.Tensor,
        llm_emb: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
        backbone_grad_norm: Optional[torch.Tensor] = None,
        degree: Optional[torch.Tensor] = None,
        n_users: Optional[int] = None,
        groups: Optional[Sequence[int]] = None,
        counts: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """Weighted DaRec terms for already-sampled rows.

        Args:
            cf_emb: (N, d) CF rows of Ω (users and items together), with gradient.
            llm_emb: (N, d_L) frozen LLM rows of the same nodes, in the same order.
            mask: optional (N,) bool; False rows (no profile) are dropped before anything is computed.
            generator: for K-means seeding and the regularisers' sub-sample.
            backbone_grad_norm: 0-d tensor, the norm of the ranking loss's gradient on the (masked) rows;
                needed only by ``structure_grad_scale='relative'``.
            degree: optional (N,) training degree of each row's node, used by ``degree_coupling`` and
                ``degree_decay``.
            n_users: rows ``[:n_users]`` are users, the rest items (before masking); needed by every
                ``global_pairs`` but 'all'.
            groups: sizes of consecutive row groups (before masking), users first, e.g. (users, positive items,
                negative items) of :meth:`sample_groups`; replaces ``n_users`` (= ``groups[0]``). With
                ``global_pairs: separate`` each group is its own global term.
            counts: optional (N,) how often the batch uses each row's node; the global term weights rows by it
                (``crossview_nce`` only).
        Returns:
            dict with keys ``DARec_TERMS``, each a scalar already multiplied by λ (after warm-up) and its
            weight. Terms that are switched off, or that cannot be computed (fewer than 2 valid rows; fewer
            than K distinct rows on a side for the local term), are zero tensors without graph.
        """
        if cf_emb.dim() != 2 or cf_emb.shape[1] != self.d_cf:
            raise ValueError(f"cf_emb must have shape (N, {self.d_cf}), got {tuple(cf_emb.shape)}")
        if llm_emb.shape != (cf_emb.shape[0], self.d_llm):
            raise ValueError(f"llm_emb must have shape ({cf_emb.shape[0]}, {self.d_llm}), "
                             f"got {tuple(llm_emb.shape)}")
        lam = self.effective_lambda()
        if self.training:
            self._step += 1
        out = {name: cf_emb.new_zeros(()) for name in DARec_TERMS}
        if groups is not None:
            if sum(groups) != cf_emb.shape[0] or min(groups, default=0) < 0:
                raise ValueError(f"groups {tuple(groups)} must be sizes >= 0 summing to the {cf_emb.shape[0]} rows")
            n_users = groups[0]
        elif self.study.global_pairs != "all" and n_users is not None:
            groups = (n_users, cf_emb.shape[0] - n_users)
        if self.study.global_pairs != "all" and groups is None:
            raise ValueError(f"global_pairs={self.study.global_pairs!r} needs n_users (the number of leading user rows)")
        if counts is not None and counts.shape != (cf_emb.shape[0],):
            raise ValueError(f"counts must have shape ({cf_emb.shape[0]},), got {tuple(counts.shape)}")
        if mask is not None:
            if groups is not None:
                groups = [int(part.sum()) for part in torch.split(mask, list(groups))]
            cf_emb, llm_emb = cf_emb[mask], llm_emb[mask]
            degree = None if degree is None else degree[mask]
            counts = None if counts is None else counts[mask]
        if lam == 0.0 or cf_emb.shape[0] < 2:
            return out
        coef = {name: lam * w for name, w in self.weights.items()}
        llm = llm_emb.detach().to(cf_emb.dtype)
        if self.study.center_llm:
            llm = llm - llm.mean(0, keepdim=True)
        l_sh = self.llm_shared(llm) if any(coef.values()) else None
        if coef["darec_global"] or coef["darec_local"]:
            self._structure_terms(out, coef, self._couple(cf_emb, lam, backbone_grad_norm, degree), cf_emb, l_sh,
                                  generator, groups, counts)
        if coef["darec_orth"] or coef["darec_unif"]:
            self._regularizer_terms(out, coef, cf_emb, llm, l_sh, generator)
        return out

    def _structure_terms(self, out, coef, cf_coupled, cf_emb, l_sh, generator, groups, counts):
        """Global and local alignment of the shared parts (the only terms that may reach E^C)."""
        study = self.study
        c_sh = self.cf_shared(cf_coupled)
        pairs, n = study.global_pairs, c_sh.shape[0]
        if coef["darec_global"]:
            target = l_sh.detach() if study.global_teacher else l_sh
            n_users = groups[0] if groups is not None else None
            ends = list(itertools.accumulate(groups if groups is not None else [n]))
            spans = {"all": [(0, n)], "cross": [(0, n)], "items": [(n_users, n)],
                     "separate": list(zip([0] + ends[:-1], ends))}[pairs]
            n_first = n_users if pairs == "cross" else None
            losses = [global_structure_loss(c_sh[a:b], target[a:b], study.global_mode, tau=study.global_tau,
                                            n_first=n_first, counts=None if counts is None else counts[a:b])
                      for a, b in spans if b - a >= 2 and (n_first is None or 0 < n_first < n)]
            if losses:
                out["darec_global"] = coef["darec_global"] * sum(losses)
        if coef["darec_local"]:
            c_local = self.cf_shared(cf_emb.detach()) if study.local_stopgrad else c_sh
            warm = study.kmeans_init == "warm" and self._warm_centres is not None
            try:
                res = local_structure_loss(c_local, l_sh, self.n_clusters, mode=study.local_mode,
                                           tau=study.local_tau, iters=self.kmeans_iters, generator=generator,
                                           init=self._warm_centres if warm else "kmeans++")
            except TooFewPointsError as err:  # tiny/duplicate batch: skip the term this step, say so once
                if not self._warned_few_points:
                    self._warned_few_points = True
                    logging.getLogger().warning(
                        f"DaRec: local alignment skipped on a batch whose Ω has {c_local.shape[0]} rows ({err}); "
                        f"it is 0 on every such batch: lower darec_k (K={self.n_clusters}) or raise the batch size")
                return
            out["darec_local"] = coef["darec_local"] * res.loss
            self.last_local = res._replace(loss=res.loss.detach())
            if study.kmeans_init == "warm" and self.training:
                self._warm_centres = (res.kmeans_cf, res.kmeans_llm)

    def _regularizer_terms(self, out, coef, cf_emb, llm, l_sh, generator):
        """Orthogonality and uniformity of the four projections, on ``reg_sample`` rows of Ω."""
        n = cf_emb.shape[0]
        if self.reg_sample is not None and self.reg_sample < n:
            idx = randperm(n, generator, cf_emb.device)[: self.reg_sample]
            cf_emb, llm, l_sh = cf_emb[idx], llm[idx], l_sh[idx]
        l_sp = self.llm_specific(llm)
        pairs = [(l_sh, l_sp)]
        if self.cf_regularizers_matter:
            cf_r = cf_emb.detach() if self.study.regularizer_stopgrad else cf_emb
            pairs.insert(0, (self.cf_shared(cf_r), self.cf_specific(cf_r)))
        if coef["darec_orth"]:
            out["darec_orth"] = coef["darec_orth"] * sum(orthogonality_loss(sh, sp) for sh, sp in pairs)
        if coef["darec_unif"]:
            parts = [part for pair in pairs for part in pair]
            out["darec_unif"] = coef["darec_unif"] * uniformity_losses(parts, self.unif_t).sum()

    @property
    def cf_regularizers_matter(self) -> bool:
        """Whether the CF side's orthogonality and uniformity can change anything. Not when C_sh is a fixed isometry
        of stop-gradient rows (its terms then have no gradient at all) and nothing reads C_sp (``cf_specific_read``:
        scoring with [C_sh || C_sp]): C_sp's projector would be trained for nobody. They are skipped then, which
        leaves training as it was (same gradients on every other parameter) at about half the uniformity's cost."""
        study = self.study
        return self.cf_specific_read or study.cf_projector != "isometry" or not study.regularizer_stopgrad

    @torch.no_grad()
    def cluster_labels(self, cf_emb: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """K-means labels (N,) of the normalised CF-shared projections of ``cf_emb`` (for t-SNE plots).

        Raises TooFewPointsError (a ValueError) when cf_emb has fewer than K distinct rows.
        """
        z = F.normalize(self.cf_shared(cf_emb), dim=-1)
        return kmeans(z, self.n_clusters, iters=self.kmeans_iters, generator=generator)[0]
