"""RLMRec-Con (contrastive alignment) on LightGCN."""
from recbole_darec.model.backbones.lightgcn import LightGCNBackbone
from recbole_darec.model.composed.rlmrec import RLMRecConMixin


class RLMRecConLightGCN(RLMRecConMixin, LightGCNBackbone):
    """RLMRec-Con (contrastive alignment) on LightGCN."""
