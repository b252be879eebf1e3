"""RLMRec-Gen (masked generative alignment) on SGL."""
from recbole_darec.model.backbones.sgl import SGLBackbone
from recbole_darec.model.composed.rlmrec import RLMRecGenMixin


class RLMRecGenSGL(RLMRecGenMixin, SGLBackbone):
    """RLMRec-Gen (masked generative alignment) on SGL."""
