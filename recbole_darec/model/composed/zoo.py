"""Adapter that lets an alignment head sit on any RecBole zoo model (``backbone: LightGCN``, ``NGCF``, ...)."""
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from recbole_darec.model.backbones.base import CachedDotProductScoring
from recbole_darec.model.composed.semantic import config_value


class ZooBackbone(CachedDotProductScoring, GeneralRecommender):
    """Adapts a RecBole zoo model (``backbone: LightGCN``, ``NGCF``, ...) to the backbone interface.

    The zoo model computes its own loss (with its own forward pass); the head then runs on a second
    ``forward()`` call -- one extra propagation per step, the price of not touching RecBole's code. Scores are
    dot products of ``forward()``'s embeddings, as in RecBole's graph models.
    """

    input_type = InputType.PAIRWISE
    loss_names = ("backbone",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        from recbole_darec.model import get_model

        name = config_value(config, "backbone", None)
        if not name:
            raise ValueError("config key 'backbone' must name a model with forward() -> (user_e, item_e), e.g. LightGCN")
        self.backbone = get_model(name)(config, dataset)
        self.backbone_name = name
        self.embedding_size = int(config["embedding_size"])
        self.restore_user_e = self.restore_item_e = None
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]

    def forward(self):
        out = self.backbone.forward()
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(f"backbone {self.backbone_name}: forward() must return (user_e, item_e)")
        return out

    def backbone_loss(self, interaction, user_all, item_all):
        loss = self.backbone.calculate_loss(interaction)
        return (sum(loss) if isinstance(loss, tuple) else loss,)  # zoo models name no terms: log one sum
