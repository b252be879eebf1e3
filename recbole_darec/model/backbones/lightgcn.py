"""LightGCN backbone with both published conventions selectable.

Reference:
    Xiangnan He et al. "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation."
    SIGIR 2020.

``layer_combine: mean`` with ``edge_keep_prob: 1.0`` (the defaults) propagates exactly like RecBole's ``LightGCN``;
``layer_combine: sum`` with ``edge_keep_prob: 0.8`` is RLMRec's LightGCN (Ren et al., WWW 2024), which drops
entries of the normalised adjacency at every training step. ``edge_drop_mode: rescale`` divides the survivors by
the keep probability (inverted dropout, as LightGCL's code); ``drop`` leaves them as they are, as RLMRec's published
code does (its division is commented out), so training propagates through a ~keep^l smaller graph than evaluation;
``renorm`` drops interactions and re-normalises the graph (SGL's convention).
"""
from recbole_darec.model import graph
from recbole_darec.model.backbones.base import GraphBackbone


class LightGCNBackbone(GraphBackbone):
    """LightGCN: ``E = combine(E^(0), A E^(0), ..., A^L E^(0))``, scored by dot product, trained with BPR.

    Config keys (besides :class:`GraphBackbone`'s):
        layer_combine (str): ``mean`` (RecBole, default) or ``sum`` (RLMRec) over layers 0..n_layers.
        edge_keep_prob (float): probability of keeping an edge during training, in (0, 1]; 1.0 = no dropout.
        edge_drop_mode (str): ``rescale`` (drop normalised entries, divide by keep prob), ``drop`` (RLMRec's
            code: drop normalised entries, no rescaling) or ``renorm`` (SGL: drop interactions, recompute degrees).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # parameters
        self.layer_combine = self.param(config, "layer_combine")
        self.edge_keep_prob = float(self.param(config, "edge_keep_prob"))
        self.edge_drop_mode = self.param(config, "edge_drop_mode")
        if self.layer_combine not in ("mean", "sum"):
            raise ValueError(f"layer_combine must be 'mean' or 'sum', got {self.layer_combine!r}")
        if not 0.0 < self.edge_keep_prob <= 1.0:
            raise ValueError(f"edge_keep_prob must be in (0, 1], got {self.edge_keep_prob}")
        if self.edge_drop_mode not in ("rescale", "drop", "renorm"):
            raise ValueError(f"edge_drop_mode must be 'rescale', 'drop' or 'renorm', got {self.edge_drop_mode!r}")

    def train_graph(self):
        """The adjacency for this step: a fresh edge-dropped one in training, the full one otherwise."""
        if not self.training or self.edge_keep_prob == 1.0:
            return self.full_graph
        if self.edge_drop_mode in ("rescale", "drop"):
            return self.full_graph.dropout(self.edge_keep_prob, rescale=self.edge_drop_mode == "rescale")
        return self.adjacency_of(*graph.drop_edges(self.inter_users, self.inter_items, self.edge_keep_prob))

    def propagate_from(self, ego):
        return graph.propagate(self.train_graph(), ego, self.n_layers, self.layer_combine)
