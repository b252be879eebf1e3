"""A model whose scores are a fixed table per item token, the same for every user: rankings become hand-computable."""
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType


class FixedScoresModel(GeneralRecommender):
    """Subclass with ``SCORES = {item token: score}``; tokens not in it score -1e9."""

    input_type = InputType.PAIRWISE
    SCORES = {}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # the trainer needs one parameter
        tokens = dataset.field2id_token[self.ITEM_ID]
        self.register_buffer("scores", torch.tensor([self.SCORES.get(t, -1e9) for t in tokens]))

    def calculate_loss(self, interaction):
        return self.dummy.sum()

    def full_sort_predict(self, interaction):
        return self.scores.repeat(len(interaction[self.USER_ID]), 1)
