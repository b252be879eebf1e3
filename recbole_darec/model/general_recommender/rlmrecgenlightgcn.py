"""RLMRec-Gen (masked generative alignment) on LightGCN."""
from recbole_darec.model.backbones.lightgcn import LightGCNBackbone
from recbole_darec.model.composed.rlmrec import RLMRecGenMixin


class RLMRecGenLightGCN(RLMRecGenMixin, LightGCNBackbone):
    """RLMRec-Gen (masked generative alignment) on LightGCN."""
