"""Row helpers shared by the alignment modules."""
from typing import Optional

import torch
import torch.nn.functional as F

_EPS = 1e-12


def norm_rows(x: torch.Tensor) -> torch.Tensor:
    """Row-L2-normalised x (a zero row stays zero instead of NaN)."""
    return F.normalize(x, dim=-1, eps=_EPS)


def check_rows(name: str, x: torch.Tensor, min_rows: int = 1) -> None:
    """ValueError naming ``name`` unless x is a 2-d (rows, dim) tensor with at least ``min_rows`` rows."""
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-d (rows, dim) tensor, got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {x.shape[0]}")


def randperm(n: int, generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    """torch.randperm drawn on the generator's device (it must match), returned on ``device``."""
    dev = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=dev).to(device)
