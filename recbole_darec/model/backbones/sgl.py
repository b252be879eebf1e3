"""SGL backbone: LightGCN plus a self-supervised contrast between two augmented graph views.

Reference:
    Jiancan Wu et al. "Self-supervised Graph Learning for Recommendation." SIGIR 2021.

Views (``sgl_view_type``): ``ED`` edge dropout, ``ND`` node dropout (all edges of a random ``drop_ratio`` of users
and of items removed), ``RW`` random walk (a fresh edge dropout per layer). Each view graph is re-normalised with
its own degrees. As in the paper and RecBole, the two views are drawn once per epoch: ``train()`` (which RecBole's
trainer calls at the start of each epoch) discards them and the first training step of the epoch draws new ones,
so evaluation never pays for them. The BPR and SSL terms are both batch means (RecBole's SGL uses sums); the ratio
between them is unchanged, ``reg_weight`` is relatively ``batch_size`` times stronger than in RecBole's SGL.
"""
import torch

from recbole_darec.model import graph
from recbole_darec.model.backbones.base import GraphBackbone, all_node_info_nce


class SGLBackbone(GraphBackbone):
    """SGL with loss terms ``('bpr', 'reg', 'ssl')``; scores with the full graph's mean-combined embeddings.

    Config keys (besides :class:`GraphBackbone`'s):
        sgl_view_type (str): ``ED``, ``ND`` or ``RW`` (not ``type``: that name is RecBole's ModelType attribute).
        drop_ratio (float): fraction of edges (ED/RW) or nodes (ND) dropped in each view, in [0, 1).
        ssl_tau (float): InfoNCE temperature, > 0.
        ssl_weight (float): weight of the SSL term, >= 0.
    """

    loss_names = ("bpr", "reg", "ssl")
    defaults = {"n_layers": 3, "sgl_view_type": "ED", "drop_ratio": 0.1, "ssl_tau": 0.5, "ssl_weight": 0.05}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # parameters
        self.view_type = str(self.param(config, "sgl_view_type")).upper()
        self.drop_ratio = float(self.param(config, "drop_ratio"))
        self.ssl_tau = float(self.param(config, "ssl_tau"))
        self.ssl_weight = float(self.param(config, "ssl_weight"))
        if self.view_type not in ("ED", "ND", "RW"):
            raise ValueError(f"sgl_view_type must be 'ED', 'ND' or 'RW', got {self.view_type!r}")
        if not 0.0 <= self.drop_ratio < 1.0:
            raise ValueError(f"drop_ratio must be in [0, 1), got {self.drop_ratio}")
        if self.ssl_tau <= 0 or self.ssl_weight < 0:
            raise ValueError(f"need ssl_tau > 0 and ssl_weight >= 0, got {self.ssl_tau}, {self.ssl_weight}")
        # caches: the two augmented views of the current epoch (drawn lazily)
        self.views = None

    def propagate_from(self, ego):
        return graph.propagate(self.norm_adj, ego, self.n_layers, "mean")

    def make_view(self):
        """One augmented graph: a sparse adjacency (ED/ND) or a list of ``n_layers`` of them (RW)."""
        if self.view_type == "ND":
            users, items, _, _ = graph.drop_nodes(
                self.inter_users, self.inter_items, self.n_users, self.n_items, self.drop_ratio
            )
            return graph.sym_norm_adj(users, items, self.n_users, self.n_items)
        n_graphs = self.n_layers if self.view_type == "RW" else 1
        graphs = [
            graph.sym_norm_adj(*graph.drop_edges(self.inter_users, self.inter_items, 1.0 - self.drop_ratio),
                               self.n_users, self.n_items)
            for _ in range(n_graphs)
        ]
        return graphs if self.view_type == "RW" else graphs[0]

    def train(self, mode=True):
        if mode:
            self.views = None  # new epoch: draw new views at the first training step
        return super().train(mode)

    def ssl_loss(self, interaction, ego=None):
        """SSL InfoNCE between the two views for the batch's users and positive items."""
        if self.views is None:
            self.views = (self.make_view(), self.make_view())
        ego = self.get_ego_embeddings() if ego is None else ego
        view1, view2 = (graph.propagate(v, ego, self.n_layers, "mean") for v in self.views)
        user1, item1 = torch.split(view1, [self.n_users, self.n_items])
        user2, item2 = torch.split(view2, [self.n_users, self.n_items])
        # the batch as it is, duplicates included (RecBole's SGL): de-duplicating down-weights frequent nodes
        # and made BPR learn markedly slower on ml-100k in our check
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        return all_node_info_nce(user1, user2, users, self.ssl_tau) + all_node_info_nce(
            item1, item2, items, self.ssl_tau
        )

    def backbone_loss(self, interaction, user_all, item_all):
        bpr, reg = super().backbone_loss(interaction, user_all, item_all)
        return bpr, reg, self.ssl_weight * self.ssl_loss(interaction)
