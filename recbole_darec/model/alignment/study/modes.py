"""DaRec's study modes: the alternatives the studies measured, kept reachable without widening :class:`DaRecHead`.

Each default is the shipped behaviour, a departure from the literal paper chosen by measurement (docs/method.md);
the other values reproduce the rows of docs/darec_study.md and docs/darec_sparse_study.md. The literal paper is
``cf_projector='mlp', global_mode='mse', global_pairs='all', center_llm=False, regularizer_stopgrad=False,
local_stopgrad=False, structure_grad_scale=1.0`` with the head's ``degree_decay=0``. Config keys: ``darec_<field>``
in properties/model/DaRecMixin.yaml (the shipped values in its "method as shipped" section, ``degree_coupling`` under
"per-node trust", the rest under "study alternatives").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

from ..losses import GLOBAL_MODES, LOCAL_MODES
from ..projectors import CF_PROJECTORS

__all__ = ["DaRecStudyModes", "GLOBAL_PAIRS", "GRAD_SCALES", "KMEANS_INITS"]

GRAD_SCALES = ("auto", "none", "relative")
GLOBAL_PAIRS = ("all", "cross", "items", "separate")
KMEANS_INITS = ("kmeans++", "warm")


@dataclass(frozen=True)
class DaRecStudyModes:
    """How the DaRec terms are computed and how much of them reaches E^C.

    Attributes:
        cf_projector: ``'isometry'`` (the CF *shared* projector is a fixed random isometry, the specific one an MLP:
            a trained map would fit the alignment itself instead of moving E^C), ``'mlp'`` (the paper) or
            ``'linear'``.
        global_mode: ``'crossview_nce'`` (each node's CF view picks its own LLM view among its group's, InfoNCE),
            ``'crossview'`` (the same pairing as squared distance to the identity), ``'mse'`` (the paper: within-side similarity matrices), ``'centered'``, ``'standardized'`` or
            ``'neighbors'`` (see ``study/global_modes.py``).
        global_pairs: ``'separate'`` (user–user and item–item pairs, one term each), ``'all'`` (every pair of Ω),
            ``'cross'`` (user–item pairs only) or ``'items'`` (item–item pairs only).
        global_tau: temperature of the 'crossview_nce' and 'neighbors' global modes.
        global_teacher: the LLM side's shared structure is a fixed target of the global term (no gradient into
            the LLM-side projector through it).
        local_mode: ``'mse'`` (normalised matched centres), ``'infonce'`` (matched centre = positive) or
            ``'assign'`` (per-node soft assignments to matched centres).
        local_tau: temperature of the 'infonce' and 'assign' local modes.
        kmeans_init: ``'kmeans++'`` (fresh each step) or ``'warm'`` (from the previous training step's centres).
        degree_coupling: d0 ≥ 0; the structure gradient into row i's CF embedding is multiplied by
            ``1 + d0 / max(deg_i, 1)``; 0 = off.
        regularizer_stopgrad: orthogonality/uniformity train the projectors only (literally they send hundreds of
            times BPR's gradient into the tiny propagated rows: every DaRec term is scale-invariant).
        local_stopgrad: the local term trains the projectors only (it moves every member of a cluster the same way:
            −5 % test Recall@20 on ml-100k when it reached E^C).
        structure_grad_scale: ``'none'``, ``'auto'`` (× the rows' mean squared norm, capped at 1: the v1 default),
            ``'relative'`` (λ·||∇ L_rank|| on the same rows; the model passes the ranking loss's gradient norm) or a
            float ≥ 0: the global/local gradient into E^C.
        center_llm: subtract the mean LLM row before projecting (sentence embeddings are anisotropic).
        warmup_steps: λ ramps linearly over this many training-mode calls.

    Raises:
        ValueError naming the field and its value for any invalid setting.
    """

    cf_projector: str = "isometry"
    global_mode: str = "crossview_nce"
    global_pairs: str = "separate"
    global_tau: float = 0.2
    global_teacher: bool = False
    local_mode: str = "mse"
    local_tau: float = 0.2
    kmeans_init: str = "kmeans++"
    degree_coupling: float = 0.0
    regularizer_stopgrad: bool = True
    local_stopgrad: bool = True
    structure_grad_scale: Union[str, float] = "none"
    center_llm: bool = True
    warmup_steps: int = 0

    def __post_init__(self):
        for name, choices in (("cf_projector", CF_PROJECTORS), ("global_mode", GLOBAL_MODES),
                              ("global_pairs", GLOBAL_PAIRS), ("local_mode", LOCAL_MODES),
                              ("kmeans_init", KMEANS_INITS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("global_tau", "local_tau"):
            value = getattr(self, name)
            if not math.isfinite(float(value)) or value <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not math.isfinite(float(self.degree_coupling)) or self.degree_coupling < 0:
            raise ValueError(f"degree_coupling must be a finite number >= 0, got {self.degree_coupling!r}")
        if not isinstance(self.warmup_steps, int) or isinstance(self.warmup_steps, bool) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if self.global_mode in ("crossview", "crossview_nce") and self.global_pairs == "cross":
            raise ValueError("global_mode='crossview' compares each node's two views; global_pairs must be 'all', "
                             "'items' or 'separate', got 'cross'")
        scale = self.structure_grad_scale
        bad_scale = (scale not in GRAD_SCALES if isinstance(scale, str)
                     else not math.isfinite(float(scale)) or scale < 0)
        if bad_scale:
            raise ValueError(f"structure_grad_scale must be one of {GRAD_SCALES} or a float >= 0, got {scale!r}")
        # normalise types once (YAML may give ints for floats, 0/1 for booleans)
        for name, kind in (("global_tau", float), ("local_tau", float), ("degree_coupling", float),
                           ("global_teacher", bool), ("regularizer_stopgrad", bool), ("local_stopgrad", bool),
                           ("center_llm", bool)):
            object.__setattr__(self, name, kind(getattr(self, name)))

    def lambda_at(self, lam: float, step: int) -> float:
        """λ after the warm-up, at the given number of training-mode calls so far."""
        if self.warmup_steps == 0:
            return lam
        return lam * min(1.0, (step + 1) / self.warmup_steps)
