"""Adapter that lets an alignment head sit on any RecBole zoo model (``backbone: LightGCN``, ``NGCF``, ...)."""
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from recbole_darec.model import get_model
from recbole_darec.model.backbones.base import CachedDotProductScoring
from recbole_darec.model.common import ModelCommon


class ZooBackbone(CachedDotProductScoring, ModelCommon, GeneralRecommender):
    """Adapts a RecBole zoo model (``backbone: LightGCN``, ``NGCF``, ...) to the backbone interface.

    The zoo model computes its own loss with its own ``calculate_loss``; while it does, its argument-less
    ``forward()`` returns the embeddings the head sees, so a step propagates once and the head's
    ``structure_grad_scale: relative`` can measure the ranking gradient on them. Scores are dot products of
    ``forward()``'s embeddings, as in RecBole's graph models.
    """

    input_type = InputType.PAIRWISE
    loss_names = ("backbone",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        name = self.param(config, "backbone", optional=True)  # no default: the message below says what to set
        if not name:
            raise ValueError("config key 'backbone' must name a model with forward() -> (user_e, item_e), e.g. LightGCN")
        self.backbone = get_model(name)(config, dataset)
        self.backbone_name = name
        self.embedding_size = int(self.param(config, "embedding_size"))
        self.restore_user_e = self.restore_item_e = None
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]

    def forward(self):
        out = self.backbone.forward()
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(f"backbone {self.backbone_name}: forward() must return (user_e, item_e)")
        return out

    def backbone_loss(self, interaction, user_all, item_all):
        original = self.backbone.forward

        def reuse(*args, **kwargs):  # forward(...) with arguments (e.g. a view graph) runs for real
            return original(*args, **kwargs) if args or kwargs else (user_all, item_all)

        self.backbone.forward = reuse  # instance attribute, shadows the class method until deleted
        try:
            loss = self.backbone.calculate_loss(interaction)
        finally:
            del self.backbone.forward
        return (sum(loss) if isinstance(loss, tuple) else loss,)  # zoo models name no terms: log one sum
