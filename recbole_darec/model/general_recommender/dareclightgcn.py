"""DaRec alignment head on LightGCN."""
from recbole_darec.model.backbones.lightgcn import LightGCNBackbone
from recbole_darec.model.composed.darec import DaRecMixin


class DaRecLightGCN(DaRecMixin, LightGCNBackbone):
    """DaRec alignment head on LightGCN."""
