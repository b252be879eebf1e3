"""Projection MLPs shared by the DaRec and RLMRec heads."""
from __future__ import annotations

from torch import nn

__all__ = ["mlp", "cf_projector", "llm_projector", "CF_PROJECTORS"]

CF_PROJECTORS = ("mlp", "linear", "isometry")


def _check_dim(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    """Linear(d_in, d_hidden) - LeakyReLU - Linear(d_hidden, d_out), Xavier-uniform weights, zero biases.

    Args:
        d_in: input width; d_hidden: hidden width; d_out: output width (all positive ints).
    """
    for name, value in (("d_in", d_in), ("d_hidden", d_hidden), ("d_out", d_out)):
        _check_dim(name, value)
    net = nn.Sequential(nn.Linear(d_in, d_hidden), nn.LeakyReLU(), nn.Linear(d_hidden, d_out))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net


def cf_projector(d: int, d_out: int, kind: str = "mlp") -> nn.Sequential:
    """CF-side projector: ``'mlp'`` Linear(d, d_out) - LeakyReLU - Linear(d_out, d_out); ``'linear'``
    Linear(d, d_out) alone (Xavier-uniform weights, zero bias); ``'isometry'`` a fixed (untrained) random map with
    orthonormal rows or columns, no bias: it keeps the CF rows' geometry (an exact isometry when d_out ≥ d).

    Args:
        d: CF embedding width; d_out: projection width d'; kind: one of ``CF_PROJECTORS``.
    """
    if kind == "mlp":
        return mlp(d, d_out, d_out)
    if kind not in CF_PROJECTORS:
        raise ValueError(f"cf projector must be one of {CF_PROJECTORS}, got {kind!r}")
    _check_dim("d", d)
    _check_dim("d_out", d_out)
    layer = nn.Linear(d, d_out, bias=kind == "linear")
    if kind == "linear":
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    else:
        nn.init.orthogonal_(layer.weight)
        layer.weight.requires_grad_(False)
    return nn.Sequential(layer)


def llm_projector(d_llm: int, d_out: int) -> nn.Sequential:
    """LLM-side projector (RLMRec's shape): Linear(d_llm, (d_llm+d_out)//2) - LeakyReLU - Linear(·, d_out).

    Args:
        d_llm: LLM embedding width d_L (e.g. 384 MiniLM, 1536 ada-002); d_out: projection width d'.
    """
    _check_dim("d_llm", d_llm)
    _check_dim("d_out", d_out)
    return mlp(d_llm, (d_llm + d_out) // 2, d_out)
