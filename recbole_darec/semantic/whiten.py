"""PCA (optionally whitened) of the frozen LLM tables, done once when a model is built.

Why: sentence embeddings are anisotropic (a few directions carry most of the variance and most pairs have a high
cosine), and RLMRec's ada-002 rows are 1536-d, which makes the LLM-side projectors the most expensive
part of an alignment head. Keeping the top ``dim`` principal directions of the profile rows (users and items
together, since one projector serves both), divided by their standard deviations when ``whiten``, gives
isotropic inputs of a small width: the projector's first layer shrinks from d_L x (d_L+d')/2 to dim x (dim+d')/2
and the table's memory from d_L to dim floats per row. Rows without a profile stay zero.
"""
from collections import namedtuple

import torch

__all__ = ["PCA", "pca_fit", "pca_apply", "pca_tables", "reduce_table"]

# The fitted reduction, kept by the model so rows it never saw (new items' text) are reduced exactly like its tables:
# mean (d_L,) and basis (d_L, dim) in float64 (whitening folded into the basis), explained a float.
PCA = namedtuple("PCA", "mean basis explained")


def pca_fit(user_table, item_table, user_mask, item_mask, dim, whiten=True):
    """The top-``dim`` principal directions of both tables' profile rows (arguments as :func:`pca_tables`).

    Returns:
        PCA: the mean row, the basis (divided by the directions' standard deviations when ``whiten``) and the
        fraction of the profile rows' variance the kept directions explain.

    Raises:
        ValueError naming ``dim`` when it is out of range.
    """
    d_llm = user_table.shape[1]
    rows = torch.cat([user_table[user_mask], item_table[item_mask]]).double()
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= min(d_llm, rows.shape[0] - 1):
        raise ValueError(f"semantic_pca_dim must be an int in [1, {min(d_llm, rows.shape[0] - 1)}] "
                         f"(embedding width {d_llm}, {rows.shape[0]} profile rows), got {dim!r}")
    mean = rows.mean(0)
    centred = rows - mean
    cov = centred.t() @ centred / (rows.shape[0] - 1)
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    eigvals, eigvecs = eigvals.flip(0).clamp_min(0.0), eigvecs.flip(1)
    basis = eigvecs[:, :dim]
    # eigenvectors are defined up to sign: fix it (largest |entry| positive) so the result is reproducible
    signs = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))
    basis = basis * signs
    if whiten:
        basis = basis / eigvals[:dim].clamp_min(1e-12).sqrt()
    explained = float(eigvals[:dim].sum() / eigvals.sum().clamp_min(1e-30))
    return PCA(mean, basis, explained)


def pca_apply(rows, pca):
    """``rows`` (n, d_L) reduced by a fitted :class:`PCA`: (n, dim) in float64."""
    return (rows.double() - pca.mean) @ pca.basis


def pca_tables(user_table, item_table, user_mask, item_mask, dim, whiten=True):
    """Project both tables onto the top-``dim`` principal directions of their profile rows.

    Args:
        user_table, item_table: (n_users, d_L), (n_items, d_L) frozen LLM rows (any float dtype).
        user_mask, item_mask: bool masks of the rows that have a profile (the others are zero and ignored).
        dim: number of principal directions kept, 1 <= dim <= d_L, and at most the number of profile rows - 1.
        whiten: divide each direction by its standard deviation (unit variance per component).

    Returns:
        (user_reduced, item_reduced, explained): the reduced tables in the input dtype (masked rows zero) and
        the fraction of the profile rows' variance the kept directions explain.

    Raises:
        ValueError naming ``dim`` when it is out of range.
    """
    pca = pca_fit(user_table, item_table, user_mask, item_mask, dim, whiten)
    return reduce_table(user_table, user_mask, pca), reduce_table(item_table, item_mask, pca), pca.explained


def reduce_table(table, mask, pca):
    """A table reduced by ``pca`` in its own dtype; rows outside ``mask`` stay zero."""
    out = torch.zeros(table.shape[0], pca.basis.shape[1], dtype=torch.float64, device=table.device)
    out[mask] = pca_apply(table[mask], pca)
    return out.to(table.dtype)
