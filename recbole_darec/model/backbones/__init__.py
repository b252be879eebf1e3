"""Graph backbones the alignment heads compose with; see :class:`GraphBackbone` for the shared API."""
from recbole_darec.model.backbones.base import GraphBackbone, all_node_info_nce
from recbole_darec.model.backbones.lightgcl import LightGCL
from recbole_darec.model.backbones.lightgcn import LightGCNBackbone
from recbole_darec.model.backbones.sgl import SGLBackbone

__all__ = ["GraphBackbone", "LightGCNBackbone", "SGLBackbone", "LightGCL", "all_node_info_nce"]
