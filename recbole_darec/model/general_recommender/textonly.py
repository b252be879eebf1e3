"""TextOnly: the text-only baseline of the cold-item protocol (docs/cold-items.md).

A user is the mean of their training items' LLM rows (items without a text row left out), an item its own LLM row,
the score their cosine. Nothing is trained: like RecBole's ``Pop`` it is a traditional model (one pass of RecBole's
trainer) with one placeholder parameter and a constant loss, so the trainer, checkpoints and the comparison runner
treat it as any other model. It reads text only, so a cold item is scored exactly like a warm one. The LLM tables
are the encoder's full-width rows (no ``semantic_pca_dim`` reduction: this class loads no aligned model's YAML).
"""
import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType

from recbole_darec.model.composed.semantic import SemanticMixin
from recbole_darec.semantic import register_semantic_buffers
from recbole_darec.semantic.settings import SemanticSettings


class TextOnly(GeneralRecommender):
    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL
    scores_items_by_text = True  # cold_eval: its own scores place new items

    @classmethod
    def prepare_data(cls, config):
        SemanticMixin.prepare_data(config)  # the same profile tables, built or checked as for aligned models

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        settings = SemanticSettings.from_config(config)
        register_semantic_buffers(self, dataset, fp16=False, check_split=bool(settings.check_split))
        self.placeholder = torch.nn.Parameter(torch.zeros(1))  # RecBole's trainer builds an optimizer over it
        items = F.normalize(self.item_semantic.float(), dim=1)  # zero rows (no text) stay zero
        users = torch.as_tensor(dataset.inter_feat[self.USER_ID], dtype=torch.long).to(items.device)
        seen = torch.as_tensor(dataset.inter_feat[self.ITEM_ID], dtype=torch.long).to(items.device)
        with_text = self.item_semantic_mask[seen]
        total = torch.zeros(self.n_users, items.shape[1], device=items.device)
        total.index_add_(0, users[with_text], items[seen[with_text]])
        self.register_buffer("user_rows", F.normalize(total, dim=1), persistent=False)
        self.register_buffer("item_rows", items, persistent=False)

    def calculate_loss(self, interaction):
        return self.placeholder.sum() * 0.0  # nothing to learn: the placeholder keeps RecBole's step well-formed

    def predict(self, interaction):
        return (self.user_rows[interaction[self.USER_ID]] * self.item_rows[interaction[self.ITEM_ID]]).sum(1)

    def full_sort_predict(self, interaction):
        return (self.user_rows[interaction[self.USER_ID]] @ self.item_rows.t()).view(-1)
