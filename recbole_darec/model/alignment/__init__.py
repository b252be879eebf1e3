"""Alignment building blocks: pure losses, projectors and the DaRec / RLMRec loss heads (RecBole-free)."""
from .darec_head import DARec_TERMS, DaRecHead
from .losses import (
    GLOBAL_MODES, LOCAL_MODES, LocalAlignment, TooFewPointsError, cluster_centres, crossview_loss,
    global_structure_loss, grad_norms, info_nce, kmeans, local_structure_loss, match_clusters, orthogonality_loss,
    uniformity_loss, uniformity_losses,
)
from .projectors import cf_projector, llm_projector, mlp
from .rlmrec_heads import RLMRecConHead, RLMRecGenHead
from .study.modes import DaRecStudyModes

__all__ = [
    "DaRecHead", "DaRecStudyModes", "DARec_TERMS", "RLMRecConHead", "RLMRecGenHead",
    "cf_projector", "llm_projector", "mlp",
    "orthogonality_loss", "uniformity_loss", "uniformity_losses", "crossview_loss", "global_structure_loss", "kmeans",
    "cluster_centres", "match_clusters", "local_structure_loss", "info_nce", "grad_norms",
    "LocalAlignment", "TooFewPointsError", "GLOBAL_MODES", "LOCAL_MODES",
]
