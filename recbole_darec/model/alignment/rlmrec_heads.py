"""RLMRec baselines as loss heads (Ren et al., "Representation Learning with Large Language Models for
Recommendation", WWW 2024): the contrastive (Con) and generative (Gen) alignments."""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .losses import info_nce
from .projectors import mlp

__all__ = ["RLMRecConHead", "RLMRecGenHead"]


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = math.isfinite(float(value)) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _apply_mask(mask: Optional[torch.Tensor], *rows: Optional[torch.Tensor]):
    return rows if mask is None else tuple(None if r is None else r[mask] for r in rows)


class RLMRecConHead(nn.Module):
    """RLMRec-Con: an MLP maps LLM rows into the CF space; cosine InfoNCE pulls each CF row to its mapped
    profile, the other rows of the call being negatives.

    Call it once per group (batch users, positive items, negative items) and sum the results, as RLMRec does.

    Args:
        d_cf: CF embedding width d.
        d_llm: LLM embedding width d_L; the MLP is d_L -> (d_L+d)//2 -> d.
        kd_weight: weight ≥ 0 of the InfoNCE term (RLMRec default 1e-2).
        tau: InfoNCE temperature > 0 (RLMRec default 0.2).
    """

    def __init__(self, d_cf: int, d_llm: int, kd_weight: float = 1e-2, tau: float = 0.2):
        super().__init__()
        _check_positive("kd_weight", kd_weight, allow_zero=True)
        _check_positive("tau", tau)
        self.kd_weight, self.tau = float(kd_weight), float(tau)
        self.mlp = mlp(d_llm, (d_llm + d_cf) // 2, d_cf)

    def forward(self, cf_rows: torch.Tensor, llm_rows: torch.Tensor, mask: Optional[torch.Tensor] = None,
                counts: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Args: cf_rows (N, d) with gradient; llm_rows (N, d_L) frozen, same nodes; mask (N,) bool rows
        with a profile; counts (N,) how many rows of the batch each (unique) row stands for (``info_nce``).
        Returns ``{'rlmrec_con': kd_weight · InfoNCE}`` (zero without graph if < 2 batch rows)."""
        cf_rows, llm_rows, counts = _apply_mask(mask, cf_rows, llm_rows, counts)
        n_rows = cf_rows.shape[0] if counts is None else int(counts.sum())
        if self.kd_weight == 0.0 or n_rows < 2:
            return {"rlmrec_con": cf_rows.new_zeros(())}
        mapped = self.mlp(llm_rows.detach().to(cf_rows.dtype))
        return {"rlmrec_con": self.kd_weight * info_nce(cf_rows, mapped, self.tau, counts)}


class RLMRecGenHead(nn.Module):
    """RLMRec-Gen: mask a ratio of nodes' ego embeddings with a learnable token before propagation, decode the
    masked nodes' propagated rows into the LLM space and pull them to their profiles with cosine InfoNCE.

    Args:
        d_cf: CF embedding width d (also the mask token's width).
        d_llm: LLM embedding width d_L; the decoder is d -> (d_L+d)//2 -> d_L.
        recon_weight: weight ≥ 0 of the InfoNCE term (RLMRec default 0.1).
        mask_ratio: fraction in (0, 1] of rows masked by :meth:`mask_nodes` (at least one row).
        tau: InfoNCE temperature > 0 (RLMRec default 0.5).
    """

    def __init__(self, d_cf: int, d_llm: int, recon_weight: float = 0.1, mask_ratio: float = 0.1,
                 tau: float = 0.5):
        super().__init__()
        _check_positive("recon_weight", recon_weight, allow_zero=True)
        _check_positive("tau", tau)
        if not (0.0 < float(mask_ratio) <= 1.0):
            raise ValueError(f"mask_ratio must be in (0, 1], got {mask_ratio!r}")
        self.recon_weight, self.mask_ratio, self.tau = float(recon_weight), float(mask_ratio), float(tau)
        self.mask_token = nn.Parameter(torch.empty(1, d_cf))
        nn.init.xavier_uniform_(self.mask_token)
        self.decoder = mlp(d_cf, (d_llm + d_cf) // 2, d_llm)

    def mask_nodes(self, ego_embeddings: torch.Tensor,
                   generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Replace round(mask_ratio·N) (≥ 1) random rows of the (N, d) ego embeddings with the mask token.

        Returns (masked_ego (N, d), masked_index sorted LongTensor). Gradient reaches the token through the
        masked rows and the ego embeddings through the others.
        """
        n = ego_embeddings.shape[0]
        n_mask = min(n, max(1, int(round(self.mask_ratio * n))))
        dev = generator.device if generator is not None else ego_embeddings.device
        index = torch.randperm(n, generator=generator, device=dev)[:n_mask].to(ego_embeddings.device).sort().values
        hit = torch.zeros(n, 1, dtype=torch.bool, device=ego_embeddings.device)
        hit[index] = True
        return torch.where(hit, self.mask_token.to(ego_embeddings.dtype), ego_embeddings), index

    def forward(self, cf_out_rows_of_masked: torch.Tensor, llm_rows_of_masked: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Args: propagated CF rows (M, d) of the masked nodes; their frozen LLM rows (M, d_L); mask (M,)
        bool rows with a profile. Returns ``{'rlmrec_gen': recon_weight · InfoNCE(decoder(cf), llm)}``."""
        cf, llm = _apply_mask(mask, cf_out_rows_of_masked, llm_rows_of_masked)
        if self.recon_weight == 0.0 or cf.shape[0] < 2:
            return {"rlmrec_gen": cf.new_zeros(())}
        decoded = self.decoder(cf)
        return {"rlmrec_gen": self.recon_weight * info_nce(decoded, llm.detach().to(decoded.dtype), self.tau)}
