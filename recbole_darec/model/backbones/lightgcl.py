"""LightGCL backbone: local graph propagation contrasted with an SVD-based global view.

Reference:
    Xuheng Cai, Chao Huang, Lianghao Xia, Xubin Ren. "LightGCL: Simple Yet Effective Graph Contrastive Learning
    for Recommendation." ICLR 2023.

Local view: LightGCN propagation (sum over layers 0..L) on the normalised adjacency, with inverted edge dropout
during training only. Global view: with ``U S V^T ~= D_u^-1/2 R D_i^-1/2`` from ``torch.svd_lowrank`` (rank q,
computed once), ``G^(l)_u = U S V^T E^(l-1)_i`` and ``G^(l)_i = V S U^T E^(l-1)_u`` on the *local* layers, summed
with ``E^(0)``; it is evaluated through the factors, never densified. Because the global step is linear,
``G = E^(0) + S_hat (E^(0) + ... + E^(L-1))``: one product with the factors per step, whatever L is.
Loss: BPR + ``cl_weight`` x InfoNCE(G, E) over the batch's users and (positive and negative) items, all users /
all items as negatives + ``reg_weight`` x squared L2 norm of both embedding tables (the paper's lambda_2 weight
decay). ``cl_similarity: dot`` (default) is the authors' code -- raw dot products over tau, positive logit clamped
to [-5, 5]; ``cosine`` is the paper's equation (its gradients through the normalisation of the small
propagated embeddings left BPR nearly flat over the first epoch of our ml-100k check, dot did not).
Scores use the local view; evaluation has no dropout, so it is deterministic.
Defaults (``properties/model/LightGCL.yaml``) are the authors' code defaults but for ``cl_weight``; the paper
also reports dropout 0.25 on some datasets: ``edge_keep_prob: 0.75``.
"""
import torch

from recbole_darec.model import graph
from recbole_darec.model.backbones.base import GraphBackbone
from recbole_darec.model.contrast import all_node_info_nce


class LightGCL(GraphBackbone):
    """LightGCL with loss terms ``('bpr', 'reg', 'cl')``.

    Config keys (besides :class:`GraphBackbone`'s):
        svd_rank (int): rank q of the truncated SVD, 1 <= q <= min(n_users, n_items).
        cl_temperature (float): InfoNCE temperature tau, > 0.
        cl_weight (float): lambda_1, weight of the local/global contrast, >= 0.
        cl_similarity (str): ``dot`` (authors' code) or ``cosine`` (paper's equation).
        edge_keep_prob (float): keep probability of the local view's edges in training, in (0, 1].
        cl_negatives (str): ``all`` (every user / item, the authors' code) or ``batch`` (the batch's distinct
            users / items): the all-node contrast of 4096 users and 8192 items per step dominates a CPU epoch.
    """

    loss_names = ("bpr", "reg", "cl")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # parameters
        self.svd_rank = int(self.param(config, "svd_rank"))
        self.cl_temperature = float(self.param(config, "cl_temperature"))
        self.cl_weight = float(self.param(config, "cl_weight"))
        self.cl_similarity = self.param(config, "cl_similarity")
        self.edge_keep_prob = float(self.param(config, "edge_keep_prob"))
        self.cl_negatives = self.param(config, "cl_negatives")
        if self.cl_negatives not in ("all", "batch"):
            raise ValueError(f"cl_negatives must be 'all' or 'batch', got {self.cl_negatives!r}")
        if self.cl_similarity not in ("dot", "cosine"):
            raise ValueError(f"cl_similarity must be 'dot' or 'cosine', got {self.cl_similarity!r}")
        if self.n_layers < 1:
            raise ValueError(f"LightGCL needs n_layers >= 1, got {self.n_layers}")
        if not 1 <= self.svd_rank <= min(self.n_users, self.n_items):
            raise ValueError(f"svd_rank must be in [1, {min(self.n_users, self.n_items)}], got {self.svd_rank}")
        if self.cl_temperature <= 0 or self.cl_weight < 0:
            raise ValueError(f"need cl_temperature > 0, cl_weight >= 0; got {self.cl_temperature}, {self.cl_weight}")
        if not 0.0 < self.edge_keep_prob <= 1.0:
            raise ValueError(f"edge_keep_prob must be in (0, 1], got {self.edge_keep_prob}")
        # global view: truncated SVD of the normalised user x item matrix (after the embedding init, so the
        # embedding weights do not depend on the SVD's random projection)
        norm_r = graph.norm_interaction(self.inter_users, self.inter_items, self.n_users, self.n_items)
        self.svd_u, self.svd_s, self.svd_v = torch.svd_lowrank(norm_r, q=self.svd_rank)
        self.us, self.vs = self.svd_u * self.svd_s, self.svd_v * self.svd_s
        # caches: local layers of the last training forward, reused by the contrastive term
        self.last_layers = None

    def propagate_from(self, ego):
        adj = self.full_graph.dropout(self.edge_keep_prob) if self.training else self.full_graph
        combined, layers = graph.propagate(adj, ego, self.n_layers, "sum", return_layers=True)
        self.last_layers = layers if self.training else None
        return combined

    def global_view(self, layers):
        """``(G_user, G_item)`` from the local layers ``[E^(0), ..., E^(L)]`` through the SVD factors."""
        prev_user, prev_item = torch.split(torch.stack(layers[:-1]).sum(dim=0), [self.n_users, self.n_items])
        ego_user, ego_item = torch.split(layers[0], [self.n_users, self.n_items])
        return ego_user + self.us @ (self.svd_v.t() @ prev_item), ego_item + self.vs @ (self.svd_u.t() @ prev_user)

    def backbone_loss(self, interaction, user_all, item_all):
        bpr, _ = super().backbone_loss(interaction, user_all, item_all)
        reg = self.user_embedding.weight.pow(2).sum() + self.item_embedding.weight.pow(2).sum()
        if self.cl_weight == 0 or self.last_layers is None:
            return bpr, self.reg_weight * reg, bpr.new_zeros(())
        global_user, global_item = self.global_view(self.last_layers)
        users = interaction[self.USER_ID]
        items = torch.cat([interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]])
        cosine, clamp = (True, None) if self.cl_similarity == "cosine" else (False, 5.0)
        negatives = self.cl_negatives
        cl = all_node_info_nce(global_user, user_all, users, self.cl_temperature, cosine, clamp, negatives) + (
            all_node_info_nce(global_item, item_all, items, self.cl_temperature, cosine, clamp, negatives))
        return bpr, self.reg_weight * reg, self.cl_weight * cl
