"""SGL backbone: LightGCN plus a self-supervised contrast between two augmented graph views.

Reference:
    Jiancan Wu et al. "Self-supervised Graph Learning for Recommendation." SIGIR 2021.

Views (``sgl_view_type``): ``ED`` edge dropout, ``ND`` node dropout (all edges of a random ``drop_ratio`` of users
and of items removed), ``RW`` random walk (a fresh edge dropout per layer). Each view graph is re-normalised with
its own degrees. As in the paper and RecBole, the two views are drawn once per epoch, with torch ops on the
interaction list: ``start_training_epoch()`` (which the plugin's trainer calls before each training epoch) discards
them and the first training step of the epoch draws new ones, so evaluation never pays for them. Every graph is kept as a
:class:`~recbole_darec.model.graph.SymmetricAdjacency` (CSR, transpose-free backward).

Why ``layer_combine`` matters: the SSL term compares cosine similarities, so its gradient into the embeddings
does not grow with their scale, while BPR's does. Averaging the L+1 layers (``mean``, RecBole and the original SGL)
makes the propagated embeddings L+1 times smaller than summing them (``sum``, RLMRec): BPR's gradient shrinks
(L+1)^2-fold against the SSL term's. With RLMRec's yelp settings (L 3, SSL weight 1e-3, tau 0.1, d 32) the weighted
SSL gradient on the embedding tables is 3.6x BPR's at initialisation under ``mean`` and 0.23x under ``sum``; under
``mean`` BPR stayed at ln 2 for 3 epochs (RecBole's SGL for 4, then it fell), under ``sum`` it falls like
LightGCN's from the first.

Loss scale: BPR and SSL are batch means (RecBole's SGL sums both: same ratio, so ``ssl_weight`` means the same);
``reg_weight`` is then relatively ``batch_size`` times stronger than in RecBole's SGL.
"""
import torch

from recbole_darec.model import graph
from recbole_darec.model.backbones.base import GraphBackbone
from recbole_darec.model.contrast import all_node_info_nce


class SGLBackbone(GraphBackbone):
    """SGL with loss terms ``('bpr', 'reg', 'ssl')``; scores with the full graph's combined embeddings.

    Config keys (besides :class:`GraphBackbone`'s):
        sgl_view_type (str): ``ED``, ``ND`` or ``RW`` (not ``type``: that name is RecBole's ModelType attribute).
        drop_ratio (float): fraction of edges (ED/RW) or nodes (ND) dropped in each view, in [0, 1).
        ssl_tau (float): InfoNCE temperature, > 0.
        ssl_weight (float): weight of the SSL term, >= 0.
        layer_combine (str): ``mean`` (RecBole, original SGL) or ``sum`` (RLMRec) over layers 0..n_layers, for
            the scoring embeddings and both views.
        ssl_negatives (str): ``all`` (every user / item, the reference) or ``batch`` (the batch's distinct nodes).
    """

    loss_names = ("bpr", "reg", "ssl")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # parameters
        self.view_type = str(self.param(config, "sgl_view_type")).upper()
        self.drop_ratio = float(self.param(config, "drop_ratio"))
        self.ssl_tau = float(self.param(config, "ssl_tau"))
        self.ssl_weight = float(self.param(config, "ssl_weight"))
        self.layer_combine = self.param(config, "layer_combine")
        self.ssl_negatives = self.param(config, "ssl_negatives")
        if self.view_type not in ("ED", "ND", "RW"):
            raise ValueError(f"sgl_view_type must be 'ED', 'ND' or 'RW', got {self.view_type!r}")
        if not 0.0 <= self.drop_ratio < 1.0:
            raise ValueError(f"drop_ratio must be in [0, 1), got {self.drop_ratio}")
        if self.ssl_tau <= 0 or self.ssl_weight < 0:
            raise ValueError(f"need ssl_tau > 0 and ssl_weight >= 0, got {self.ssl_tau}, {self.ssl_weight}")
        if self.layer_combine not in ("mean", "sum"):
            raise ValueError(f"layer_combine must be 'mean' or 'sum', got {self.layer_combine!r}")
        if self.ssl_negatives not in ("all", "batch"):
            raise ValueError(f"ssl_negatives must be 'all' or 'batch', got {self.ssl_negatives!r}")
        # caches: the two augmented views of the current epoch (drawn lazily)
        self.views = None

    def propagate_from(self, ego):
        return graph.propagate(self.full_graph, ego, self.n_layers, self.layer_combine)

    def make_view(self):
        """One augmented graph: a :class:`SymmetricAdjacency` (ED/ND) or a list of ``n_layers`` of them (RW)."""
        if self.view_type == "ND":
            users, items, _, _ = graph.drop_nodes(
                self.inter_users, self.inter_items, self.n_users, self.n_items, self.drop_ratio
            )
            return self.adjacency_of(users, items)
        n_graphs = self.n_layers if self.view_type == "RW" else 1
        graphs = [self.adjacency_of(*graph.drop_edges(self.inter_users, self.inter_items, 1.0 - self.drop_ratio))
                  for _ in range(n_graphs)]
        return graphs if self.view_type == "RW" else graphs[0]

    def start_training_epoch(self):
        super().start_training_epoch()
        self.views = None  # new epoch: draw new views at the first training step

    def view_embeddings(self, ego=None):
        """``((user1, item1), (user2, item2))``: the two views' propagated embeddings; draws the views if needed."""
        if self.views is None:
            self.views = (self.make_view(), self.make_view())
        ego = self.get_ego_embeddings() if ego is None else ego
        return tuple(torch.split(graph.propagate(v, ego, self.n_layers, self.layer_combine),
                                 [self.n_users, self.n_items]) for v in self.views)

    def ssl_loss(self, interaction, ego=None):
        """SSL InfoNCE between the two views for the batch's users and positive items."""
        (user1, item1), (user2, item2) = self.view_embeddings(ego)
        # the batch as it is, duplicates included (RecBole's SGL): de-duplicating down-weights frequent nodes
        # and made BPR learn markedly slower on ml-100k in our check
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        return (all_node_info_nce(user1, user2, users, self.ssl_tau, negatives=self.ssl_negatives)
                + all_node_info_nce(item1, item2, items, self.ssl_tau, negatives=self.ssl_negatives))

    def backbone_loss(self, interaction, user_all, item_all):
        bpr, reg = super().backbone_loss(interaction, user_all, item_all)
        if self.ssl_weight == 0:
            return bpr, reg, bpr.new_zeros(())
        return bpr, reg, self.ssl_weight * self.ssl_loss(interaction)
