"""RLMRec-Con (contrastive alignment) on SGL."""
from recbole_darec.model.backbones.sgl import SGLBackbone
from recbole_darec.model.composed.rlmrec import RLMRecConMixin


class RLMRecConSGL(RLMRecConMixin, SGLBackbone):
    """RLMRec-Con (contrastive alignment) on SGL."""
