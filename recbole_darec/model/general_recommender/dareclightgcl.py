"""DaRec alignment head on LightGCL."""
from recbole_darec.model.backbones.lightgcl import LightGCL
from recbole_darec.model.composed.darec import DaRecMixin


class DaRecLightGCL(DaRecMixin, LightGCL):
    """DaRec alignment head on LightGCL."""
