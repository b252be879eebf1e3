"""Vectorised user-item graph utilities on torch sparse tensors, shared by the graph backbones.

Node ids follow RecBole's LightGCN: users are ``0..n_users-1``, items are ``n_users..n_users+n_items-1``.
Every function works on the device of its inputs and loops over layers only, never over edges.

Two edge-dropout conventions exist in the literature and both are here:

* ``drop_edges`` + ``sym_norm_adj`` (SGL, Wu et al. 2021): keep exactly ``round(keep * n_edges)`` interactions
  (both directions of an edge together) and re-normalise the graph with the new degrees.
* ``sparse_dropout`` (RLMRec, Ren et al. 2024, and LightGCL, Cai et al. 2023): drop entries of the already
  normalised adjacency independently, no re-normalisation; survivors are scaled by ``1 / keep`` (inverted dropout,
  LightGCL's code) or left as they are (``rescale=False``: RLMRec's published code, whose division is commented out).
"""
import warnings

import torch

DEGREE_EPS = 1e-7  # RecBole's LightGCN/SGL add this to every degree before the inverse square root


def interaction_edges(dataset, device=None):
    """Unique (user, item) pairs of a RecBole dataset's ``inter_feat`` as two LongTensors.

    Repeated interactions count once, as in RecBole's LightGCN (its dok matrix keys are (row, col) pairs).
    """
    users = torch.as_tensor(dataset.inter_feat[dataset.uid_field], dtype=torch.long, device=device)
    items = torch.as_tensor(dataset.inter_feat[dataset.iid_field], dtype=torch.long, device=device)
    n_items = dataset.item_num
    keys = torch.unique(users * n_items + items)  # sorted, so the result is deterministic
    return keys // n_items, keys % n_items


def _inv_sqrt_degree(index, size, eps):
    # float64 like RecBole's numpy computation, so the float32 result matches it to the last bit or so
    deg = torch.bincount(index, minlength=size).to(torch.float64)
    return (deg + eps).pow(-0.5)


def sym_norm_adj(users, items, n_users, n_items, eps=DEGREE_EPS):
    """Symmetric-normalised bipartite adjacency ``D^-1/2 A D^-1/2`` of size ``(n_users+n_items)^2``.

    ``A`` has a 1 for every (user, item) pair in both directions; ``D`` is its degree (+``eps``), exactly as
    RecBole's ``LightGCN.get_norm_adj_mat``. Pairs must be unique (see :func:`interaction_edges`).
    Returns a coalesced float32 COO tensor.
    """
    n = n_users + n_items
    d_user = _inv_sqrt_degree(users, n_users, eps)
    d_item = _inv_sqrt_degree(items, n_items, eps)
    values = (d_user[users] * d_item[items]).float()
    rows = torch.cat([users, items + n_users])
    cols = torch.cat([items + n_users, users])
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.cat([values, values]), (n, n),
                                   check_invariants=False).coalesce()


def norm_interaction(users, items, n_users, n_items):
    """User x item matrix ``D_u^-1/2 R D_i^-1/2`` (LightGCL's input to the SVD), coalesced float32 COO.

    No epsilon is needed: an entry exists only where both degrees are at least 1.
    """
    d_user = _inv_sqrt_degree(users, n_users, 0.0)
    d_item = _inv_sqrt_degree(items, n_items, 0.0)
    values = (d_user[users] * d_item[items]).float()
    return torch.sparse_coo_tensor(torch.stack([users, items]), values, (n_users, n_items),
                                   check_invariants=False).coalesce()


def drop_edges(users, items, keep_prob, generator=None):
    """SGL edge dropout: keep exactly ``int(n_edges * keep_prob)`` interactions, chosen without replacement."""
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
    n_keep = int(users.numel() * keep_prob)
    kept = torch.randperm(users.numel(), generator=generator, device=users.device)[:n_keep]
    return users[kept], items[kept]


def drop_nodes(users, items, n_users, n_items, drop_ratio, generator=None):
    """SGL node dropout: remove every edge of ``int(n * drop_ratio)`` random users and as many random items.

    Returns the surviving (users, items) and boolean keep masks over users and items.
    """
    if not 0.0 <= drop_ratio < 1.0:
        raise ValueError(f"drop_ratio must be in [0, 1), got {drop_ratio}")
    device = users.device
    user_keep = torch.ones(n_users, dtype=torch.bool, device=device)
    item_keep = torch.ones(n_items, dtype=torch.bool, device=device)
    user_keep[torch.randperm(n_users, generator=generator, device=device)[: int(n_users * drop_ratio)]] = False
    item_keep[torch.randperm(n_items, generator=generator, device=device)[: int(n_items * drop_ratio)]] = False
    alive = user_keep[users] & item_keep[items]
    return users[alive], items[alive], user_keep, item_keep


def sparse_dropout(adj, keep_prob, generator=None, rescale=True):
    """RLMRec/LightGCL edge dropout on a normalised coalesced COO matrix: keep each entry with ``keep_prob``
    independently and divide survivors by ``keep_prob`` (inverted dropout) unless ``rescale`` is False.
    ``keep_prob == 1`` returns ``adj``."""
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
    if keep_prob == 1.0:
        return adj
    values = adj.values()
    mask = torch.rand(values.shape, generator=generator, device=values.device) < keep_prob
    kept = values[mask] / keep_prob if rescale else values[mask]
    return torch.sparse_coo_tensor(adj.indices()[:, mask], kept, adj.shape, is_coalesced=True, check_invariants=False)


class CSRAdjacency:
    """A constant sparse matrix in CSR with its transpose, multiplied through :class:`_CSRMatmul` (the backward of
    ``A @ X`` is ``A^T @ grad``: nothing is transposed or re-coalesced per step)."""

    def __init__(self, csr, csr_transposed):
        self.csr, self.csr_transposed = csr, csr_transposed

    @property
    def shape(self):
        return self.csr.shape

    def to_dense(self):
        return self.csr.to_dense()

    def matmul(self, dense):
        return _CSRMatmul.apply(dense, self.csr, self.csr_transposed)


class SymmetricAdjacency(CSRAdjacency):
    """A symmetric sparse adjacency in CSR: its own transpose, so a 3-layer propagation with its backward is ~3-5x
    faster than COO ``torch.sparse.mm`` on one CPU thread. Only for matrices that are symmetric by construction
    (:func:`sym_norm_adj`); the result equals the COO product up to float summation order.
    """

    def __init__(self, adj):
        with warnings.catch_warnings():  # torch flags sparse CSR as beta; the product used here is stable
            warnings.simplefilter("ignore", UserWarning)
            csr = adj.to_sparse_csr()
        super().__init__(csr, csr)
        self._transpose_index = None  # entry (i, j) -> position of entry (j, i); built on the first dropout

    def nnz(self):
        return self.csr._nnz()

    def dropout(self, keep_prob, generator=None, rescale=True):
        """:func:`sparse_dropout` in CSR form: the same random draw keeps the same entries with the same values
        (dropped ones become stored zeros), so the product equals ``sparse_dropout(coo)`` up to float summation
        order. The result (a :class:`CSRAdjacency`) is no longer symmetric; its transpose shares the structure and
        only permutes the values. ``keep_prob == 1`` returns ``self``."""
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        if keep_prob == 1.0:
            return self
        values = self.csr.values()
        mask = torch.rand(values.shape, generator=generator, device=values.device) < keep_prob
        kept = torch.where(mask, values / keep_prob if rescale else values, torch.zeros_like(values))
        return CSRAdjacency(self._with_values(kept), self._with_values(kept[self.transpose_index()]))

    def transpose_index(self):
        if self._transpose_index is None:
            crow, cols = self.csr.crow_indices(), self.csr.col_indices()
            rows = torch.repeat_interleave(torch.arange(len(crow) - 1, device=crow.device), crow.diff())
            n = self.csr.shape[0]
            # CSR entries are sorted by (row, col), so row * n + col is sorted: find each (col, row) in it
            self._transpose_index = torch.searchsorted(rows * n + cols, cols * n + rows)
        return self._transpose_index

    def _with_values(self, values):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.csr.crow_indices(), self.csr.col_indices(), values, self.csr.shape)


class _CSRMatmul(torch.autograd.Function):
    """``csr @ dense`` with gradient ``csr_transposed @ grad`` into dense (the matrix itself is constant)."""

    @staticmethod
    def forward(ctx, dense, csr, csr_transposed):
        ctx.csr_transposed = csr_transposed
        return csr @ dense

    @staticmethod
    def backward(ctx, grad):
        return ctx.csr_transposed @ grad, None, None


def _spmm(adj, dense):
    return adj.matmul(dense) if isinstance(adj, CSRAdjacency) else torch.sparse.mm(adj, dense)


def propagate(adj, ego, n_layers, combine="mean", return_layers=False):
    """LightGCN propagation ``E^(l) = adj @ E^(l-1)`` and the combination of layers ``0..n_layers``.

    Args:
        adj: sparse (N x N) tensor or :class:`CSRAdjacency` (e.g. :class:`SymmetricAdjacency`), or a list of
            ``n_layers`` of them (one graph per layer, SGL's RW view).
        ego: dense (N x d) layer-0 embeddings.
        n_layers: number of propagation steps.
        combine: ``"mean"`` (RecBole's LightGCN/SGL) or ``"sum"`` (RLMRec, LightGCL).
        return_layers: also return the list of per-layer embeddings.
    """
    if combine not in ("mean", "sum"):
        raise ValueError(f"combine must be 'mean' or 'sum', got {combine!r}")
    graphs = adj if isinstance(adj, (list, tuple)) else [adj] * n_layers
    if len(graphs) != n_layers:
        raise ValueError(f"got {len(graphs)} per-layer graphs for n_layers={n_layers}")
    layers = [ego]
    for graph in graphs:
        layers.append(_spmm(graph, layers[-1]))
    combined = torch.stack(layers, dim=0).sum(dim=0)
    if combine == "mean":
        combined = combined / len(layers)
    return (combined, layers) if return_layers else combined
