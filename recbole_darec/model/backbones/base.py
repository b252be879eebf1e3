"""Common base of the plugin's graph backbones (LightGCN, SGL, LightGCL).

A backbone owns the user/item embedding tables and the normalised graph, propagates with :meth:`forward`, and
returns its training objective as a *tuple* of already-weighted terms from :meth:`backbone_loss` (names in
``loss_names``). An alignment head composed on top calls ``forward()`` once, passes the result to
``backbone_loss`` and appends its own terms, so the graph is propagated only once per step. A head that must change
the layer-0 embeddings (RLMRec-Gen masking) gets them with :meth:`get_ego_embeddings`, edits a copy, and calls
``forward(ego_override=...)``.
"""
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_uniform_initialization
from recbole.model.loss import BPRLoss, EmbLoss
from recbole.utils import InputType

from recbole_darec.model import graph
from recbole_darec.model.common import ModelCommon


class CachedDotProductScoring:
    """Scores by the dot product of ``forward()``'s embeddings, cached while in eval mode.

    Shared by the plugin's backbones and the zoo adapter. The host sets ``restore_user_e``/``restore_item_e`` to
    None in ``__init__`` and lists them in ``other_parameter_name`` (RecBole saves them with the model).
    """

    def train(self, mode=True):
        if mode:
            self.clear_cache()  # parameters are about to change: evaluation caches are stale
        return super().train(mode)

    def clear_cache(self):
        self.restore_user_e, self.restore_item_e = None, None

    def _eval_embeddings(self):
        if self.training:  # never cache embeddings computed with dropout or gradients
            return self.forward()
        if self.restore_user_e is None or self.restore_item_e is None:
            self.restore_user_e, self.restore_item_e = self.forward()
        return self.restore_user_e, self.restore_item_e

    def predict(self, interaction):
        user_all, item_all = self._eval_embeddings()
        return (user_all[interaction[self.USER_ID]] * item_all[interaction[self.ITEM_ID]]).sum(dim=1)

    def full_sort_predict(self, interaction):
        user_all, item_all = self._eval_embeddings()
        return torch.matmul(user_all[interaction[self.USER_ID]], item_all.t()).view(-1)


class GraphBackbone(CachedDotProductScoring, ModelCommon, GeneralRecommender):
    """Abstract graph backbone: subclasses implement :meth:`propagate_from` (and may extend the loss).

    Config keys (defaults in ``properties/model/<Model>.yaml``, the one place they are written):
        embedding_size (int): dimension d of the user/item embeddings.
        n_layers (int): number of propagation layers.
        reg_weight (float): weight of the regulariser chosen by ``reg_convention``.
        require_pow (bool): ``EmbLoss`` squares the norms when True (RecBole's switch).
        reg_convention (str): ``emb_loss`` (RecBole: ``EmbLoss`` of the batch's layer-0 rows, divided by the
            batch size) or ``all_params`` (RLMRec's and LightGCL's code: squared L2 norm of every trainable
            parameter -- both tables and any head's layers -- not divided by the batch size). The same
            ``reg_weight`` is orders of magnitude stronger under ``all_params``.
    """

    input_type = InputType.PAIRWISE
    loss_names = ("bpr", "reg")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # parameters
        self.embedding_size = int(self.param(config, "embedding_size"))
        self.n_layers = int(self.param(config, "n_layers"))
        self.reg_weight = float(self.param(config, "reg_weight"))
        self.require_pow = bool(self.param(config, "require_pow"))
        self.reg_convention = self.param(config, "reg_convention")
        if self.reg_convention not in ("emb_loss", "all_params"):
            raise ValueError(f"reg_convention must be 'emb_loss' or 'all_params', got {self.reg_convention!r}")
        if self.embedding_size < 1 or self.n_layers < 0 or self.reg_weight < 0:
            raise ValueError(
                f"need embedding_size >= 1, n_layers >= 0, reg_weight >= 0; got {self.embedding_size}, "
                f"{self.n_layers}, {self.reg_weight}"
            )
        # graph: unique training interactions (kept for augmentations) and the normalised adjacency
        self.inter_users, self.inter_items = graph.interaction_edges(dataset, device=self.device)
        self.full_graph = self.adjacency_of(self.inter_users, self.inter_items)  # what propagation multiplies by
        # layers and losses
        self.user_embedding = torch.nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = torch.nn.Embedding(self.n_items, self.embedding_size)
        self.bpr_loss = BPRLoss()
        self.emb_loss = EmbLoss()
        # caches for full-sort evaluation (RecBole saves them with the model via other_parameter_name)
        self.restore_user_e = None
        self.restore_item_e = None
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]
        # init
        self.apply(xavier_uniform_initialization)

    def adjacency_of(self, users, items):
        """The symmetric normalised adjacency (CSR) of the interaction pairs ``(users, items)``, normalised by
        their own degrees (the full graph, or an augmented one re-normalised)."""
        return graph.SymmetricAdjacency(graph.sym_norm_adj(users, items, self.n_users, self.n_items))

    # ------------------------------------------------------------------ propagation
    def get_ego_embeddings(self):
        """Layer-0 embeddings, users then items: ``(n_users + n_items) x d``."""
        return torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)

    def propagate_from(self, ego):
        """Propagate the given layer-0 embeddings; return the combined ``(n_users + n_items) x d`` matrix."""
        raise NotImplementedError

    def forward(self, ego_override=None):
        """Return ``(user_all_embeddings, item_all_embeddings)``; ``ego_override`` replaces the layer-0 matrix."""
        ego = self.get_ego_embeddings() if ego_override is None else ego_override
        return torch.split(self.propagate_from(ego), [self.n_users, self.n_items])

    # ------------------------------------------------------------------ training
    def backbone_loss(self, interaction, user_all, item_all):
        """BPR on the propagated embeddings plus ``reg_weight`` x the ``reg_convention`` regulariser."""
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]
        u = user_all[user]
        pos_scores = (u * item_all[pos_item]).sum(dim=1)
        neg_scores = (u * item_all[neg_item]).sum(dim=1)
        if self.reg_convention == "all_params":
            reg = sum(p.pow(2).sum() for p in self.parameters() if p.requires_grad)
        else:
            reg = self.emb_loss(
                self.user_embedding(user), self.item_embedding(pos_item), self.item_embedding(neg_item),
                require_pow=self.require_pow,
            ).reshape(())  # EmbLoss returns shape (1,); scalars keep every term the same shape for the logging
        return self.bpr_loss(pos_scores, neg_scores), self.reg_weight * reg

    def calculate_loss(self, interaction):
        self.clear_cache()
        user_all, item_all = self.forward()
        return self.backbone_loss(interaction, user_all, item_all)
