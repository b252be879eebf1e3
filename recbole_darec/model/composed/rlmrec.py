"""RLMRec head mixins (Ren et al., "Representation Learning with Large Language Models for Recommendation",
WWW 2024): the comparison baselines, composed with backbones exactly like DaRec.

* RLMRec-Con: each batch user's, positive item's and negative item's CF row is pulled (cosine InfoNCE, in-batch
  negatives) towards its profile embedding mapped into the CF space; weight ``kd_weight``, temperature ``kd_tau``.
* RLMRec-Gen: ``mask_ratio`` of all nodes get a learnable token as layer-0 embedding; the propagated rows of the
  masked nodes are decoded to the LLM space and contrasted with their profiles; weight ``recon_weight``,
  temperature ``recon_tau``. The masked propagation is also the one the backbone's loss uses (one pass per step).
"""
import torch

from recbole_darec.cli_errors import UserError
from recbole_darec.model.alignment import RLMRecConHead, RLMRecGenHead
from recbole_darec.model.composed.semantic import SemanticMixin, no_cold_map_message


class RLMRecConMixin(SemanticMixin):
    """Composes :class:`RLMRecConHead` with the backbone listed after it in the bases."""

    head_loss_names = ("rlmrec_con",)
    head_class = RLMRecConHead
    head_keys = {"kd_weight": "kd_weight", "tau": "kd_tau"}  # head parameter -> config key

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.head = self.build_head(config, self.embedding_size, self.semantic_dim)

    def head_loss(self, interaction, user_all, item_all):
        total = user_all.new_zeros(())
        for field, side, table in ((self.USER_ID, "user", user_all), (self.ITEM_ID, "item", item_all),
                                   (self.NEG_ITEM_ID, "item", item_all)):
            # a node repeated in the batch enters once, with its count: the same loss at a fraction of the cost
            ids, counts = torch.unique(interaction[field], return_counts=True)
            llm = getattr(self, f"{side}_semantic")[ids].float()
            mask = getattr(self, f"{side}_semantic_mask")[ids]
            total = total + self.head(table[ids], llm, mask=mask, counts=counts)["rlmrec_con"]
        return {"rlmrec_con": total}

    @torch.no_grad()
    def _cold_map(self, llm_rows):
        """A new item's LLM row through the head's MLP, the map its contrast pulls CF rows towards."""
        if self.head.kd_weight == 0.0:
            raise UserError(no_cold_map_message(type(self).__name__, ": its head never trained (kd_weight = 0)"))
        return self.head.mlp(llm_rows)


class RLMRecGenMixin(SemanticMixin):
    """Composes :class:`RLMRecGenHead` with the backbone; needs ``get_ego_embeddings`` and ``forward(ego_override)``."""

    head_loss_names = ("rlmrec_gen",)
    head_class = RLMRecGenHead
    head_keys = {"recon_weight": "recon_weight", "mask_ratio": "mask_ratio", "tau": "recon_tau"}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.head = self.build_head(config, self.embedding_size, self.semantic_dim)
        self._masked_index = None

    def training_embeddings(self, interaction):
        # Mask layer-0 rows; the masked propagation feeds both the backbone loss and the reconstruction.
        masked_ego, self._masked_index = self.head.mask_nodes(self.get_ego_embeddings())
        return self.forward(ego_override=masked_ego)

    def head_loss(self, interaction, user_all, item_all):
        index = self._masked_index  # sorted: masked users first, then masked items (offset by n_users)
        out_rows = torch.cat([user_all, item_all])[index]
        is_user = index < self.n_users
        llm_rows, mask = self.semantic_rows(index[is_user], index[~is_user] - self.n_users)  # no full-table copy
        return self.head(out_rows, llm_rows, mask=mask)
