"""Graph backbones the alignment heads compose with; see :class:`GraphBackbone` for the shared API."""
from recbole_darec.model.backbones.base import GraphBackbone
from recbole_darec.model.backbones.lightgcl import LightGCL
from recbole_darec.model.backbones.lightgcn import LightGCNBackbone
from recbole_darec.model.backbones.sgl import SGLBackbone
from recbole_darec.model.contrast import all_node_info_nce

__all__ = ["GraphBackbone", "LightGCNBackbone", "SGLBackbone", "LightGCL", "all_node_info_nce"]
