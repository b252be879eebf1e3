"""DaRec alignment head on SGL."""
from recbole_darec.model.backbones.sgl import SGLBackbone
from recbole_darec.model.composed.darec import DaRecMixin


class DaRecSGL(DaRecMixin, SGLBackbone):
    """DaRec alignment head on SGL."""
