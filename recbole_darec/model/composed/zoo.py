"""Adapter that lets an alignment head sit on any RecBole zoo model (``backbone: LightGCN``, ``NGCF``, ...)."""
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from recbole_darec.model.composed.semantic import config_value


class ZooBackbone(GeneralRecommender):
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

    def clear_cache(self):
        self.restore_user_e = self.restore_item_e = None

    def train(self, mode=True):
        if mode:
            self.clear_cache()
        return super().train(mode)

    def _eval_embeddings(self):
        # Graph zoo models (LightGCN, NGCF, ...) score by the dot product of forward()'s embeddings.
        if self.training:
            return self.forward()
        if self.restore_user_e is None:
            self.restore_user_e, self.restore_item_e = self.forward()
        return self.restore_user_e, self.restore_item_e

    def predict(self, interaction):
        user_all, item_all = self._eval_embeddings()
        return (user_all[interaction[self.USER_ID]] * item_all[interaction[self.ITEM_ID]]).sum(dim=1)

    def full_sort_predict(self, interaction):
        user_all, item_all = self._eval_embeddings()
        return (user_all[interaction[self.USER_ID]] @ item_all.t()).view(-1)
