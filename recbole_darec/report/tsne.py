"""The paper's "interest clusters" figures: t-SNE of users' representations, coloured by K-means cluster.

* :func:`tsne_from_checkpoint`: one DaRec checkpoint, its users' shared CF representations (``C_sh``) coloured by
  the head's own local-alignment K-means.
* :func:`tsne_pair_from_checkpoints`: a DaRec checkpoint beside one of its backbone (same seed): DaRec's ``C_sh``
  and the backbone's final user embeddings, each coloured by a K-means of the shown points (K of the DaRec head),
  with that clustering's silhouette in the panel title -- the paper's claim is that DaRec's clusters are clearer.

Models, datasets and configs are rebuilt from checkpoints with :func:`recbole_darec.quick_start.load_data_and_model`
(safe torch load).
"""
import numpy as np
import torch
from matplotlib.figure import Figure

from recbole_darec.model.composed.semantic import SemanticMixin
from recbole_darec.quick_start import load_data_and_model
from recbole_darec.report.plots import colormap, save_figure

DEFAULT_MAX_POINTS = 5000  # t-SNE is O(n log n) but slow on 2 cores past a few thousand points


def embed_2d(points, random_state=0):
    """t-SNE to 2-D with a fixed seed (the same checkpoint always gives the same picture)."""
    from sklearn.manifold import TSNE  # lazy: sklearn's t-SNE, only when a figure is drawn

    n = len(points)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))  # sklearn requires perplexity < n
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(points)


def sample_rows(n, max_points, random_state=0):
    """Sorted indices of at most ``max_points`` of ``n`` rows (all of them when few enough)."""
    index = np.arange(n)
    if n > max_points:
        index = np.sort(np.random.default_rng(random_state).choice(index, size=max_points, replace=False))
    return index


def cosine_silhouette(points, labels):
    """Silhouette of ``labels`` on ``points`` with cosine distance; None with one cluster or one point per cluster."""
    from sklearn.metrics import silhouette_score  # lazy: sklearn, only when a figure is drawn

    k = len(set(labels.tolist()))
    return float(silhouette_score(points, labels, metric="cosine")) if 1 < k < len(points) else None


def kmeans_silhouette(points, k, random_state=0):
    """(K-means labels, cosine silhouette) of ``points``.

    K-means runs on L2-normalised rows, as the DaRec head clusters, so the cosine silhouette measures the partition
    in the geometry it was found in; both panels of the pair figure use this one procedure.
    """
    from sklearn.cluster import KMeans  # lazy: sklearn, only when a figure is drawn

    unit = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    labels = KMeans(n_clusters=k, n_init=10, random_state=random_state).fit_predict(unit)
    return labels, cosine_silhouette(points, labels)


def load_model(checkpoint):
    """(config, model in eval mode) rebuilt from a checkpoint."""
    config, model, *_ = load_data_and_model(str(checkpoint))  # builds its Config apart from sys.argv
    model.eval()  # no edge dropout or masking while reading representations
    return config, model


def user_clusters_from_checkpoint(checkpoint):
    """(model name, shared user representations as numpy, K-means labels) from a DaRec checkpoint."""
    config, model = load_model(checkpoint)
    if not hasattr(model, "user_clusters"):
        raise ValueError(f"{checkpoint}: model {config['model']} has no alignment clusters (not a DaRec model)")
    shared, labels = model.user_clusters()
    return config["model"], shared.detach().cpu().numpy(), labels.detach().cpu().numpy()


def backbone_class(model_class):
    """The backbone a composed model is built on: its first base class that is not a head mixin.

    ``DaRecLightGCN(DaRecMixin, LightGCNBackbone)`` -> ``LightGCNBackbone``. For the generic ``DaRec`` this is the
    zoo adapter, whose real backbone is a config value, so no comparison row ever matches it.
    """
    return next((b for b in model_class.__bases__ if not issubclass(b, SemanticMixin)), None)


def backbone_users_from_checkpoint(checkpoint):
    """(model name, final user embeddings as numpy, [PAD] skipped) from any model whose ``forward()`` returns
    ``(user_all, item_all)``."""
    config, model = load_model(checkpoint)
    with torch.no_grad():
        user_all, _ = model.forward()
    return config["model"], user_all[1:].detach().cpu().numpy()


def _scatter_clusters(ax, xy, labels, title):
    clusters = sorted(set(labels.tolist()))
    cmap = colormap("tab10" if len(clusters) <= 10 else "tab20")
    for i, cluster in enumerate(clusters):
        mask = labels == cluster
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.75, color=cmap(i % cmap.N),
                   label=f"cluster {cluster} ({int(mask.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=2, loc="best")


def tsne_plot(shared, labels, stem, title, max_points=DEFAULT_MAX_POINTS, random_state=0):
    """Scatter of the 2-D t-SNE of ``shared`` coloured by ``labels``; returns (paths, info dict)."""
    index = sample_rows(len(shared), max_points, random_state)
    points, labels = shared[index], labels[index]
    xy = embed_2d(points, random_state=random_state)
    clusters = sorted(set(labels.tolist()))
    # Silhouette in the representation space (cosine: K-means ran on normalised rows): do the clusters separate?
    silhouette = cosine_silhouette(points, labels)
    fig = Figure(figsize=(5.2, 4.6))
    subtitle = f"{len(points)} users, K={len(clusters)}" + (f", silhouette {silhouette:.2f}" if silhouette else "")
    _scatter_clusters(fig.subplots(), xy, labels, f"{title}\n{subtitle}")
    fig.tight_layout()
    info = {"users": int(len(points)), "clusters": {int(c): int((labels == c).sum()) for c in clusters},
            "silhouette_cosine": silhouette}
    return save_figure(fig, stem), info


def tsne_from_checkpoint(checkpoint, stem, max_points=DEFAULT_MAX_POINTS, random_state=0):
    """Write ``<stem>.png``/``.pdf`` for a DaRec checkpoint; returns (paths, info dict)."""
    model_name, shared, labels = user_clusters_from_checkpoint(checkpoint)
    title = f"{model_name}: users' shared CF representations (t-SNE), by local cluster"
    return tsne_plot(shared, labels, stem, title, max_points=max_points, random_state=random_state)


def tsne_pair_plot(panels, k, stem, max_points=DEFAULT_MAX_POINTS, random_state=0):
    """Side-by-side t-SNE panels of the same users, each coloured by a K-means (K = ``k``) of its own points.

    ``panels``: ``[(title, user representations), ...]`` with rows in the same user order. The same users are
    sampled for every panel. Returns (paths, info dict with each panel's cosine silhouette).
    """
    sizes = {len(points) for _, points in panels}
    if len(sizes) != 1:
        raise ValueError(f"the panels hold different numbers of users ({sorted(sizes)}): not the same dataset")
    index = sample_rows(sizes.pop(), max_points, random_state)
    fig = Figure(figsize=(5.0 * len(panels), 4.6))
    info = {"users": int(len(index)), "k": int(k), "silhouette_cosine": {}}
    for ax, (title, points) in zip(fig.subplots(1, len(panels), squeeze=False).flat, panels):
        points = points[index]
        labels, silhouette = kmeans_silhouette(points, k, random_state)
        score = "n/a" if silhouette is None else f"{silhouette:.3f}"
        _scatter_clusters(ax, embed_2d(points, random_state), labels, f"{title}\nK-means K={k}, silhouette {score}")
        info["silhouette_cosine"][title] = silhouette
    fig.suptitle(f"{len(index)} users, t-SNE; silhouette: cosine, on the shown representation", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem), info


def tsne_pair_from_checkpoints(darec_checkpoint, backbone_checkpoint, stem, max_points=DEFAULT_MAX_POINTS,
                               random_state=0):
    """DaRec's shared CF user representations beside its backbone's final user embeddings (same seed)."""
    config, model = load_model(darec_checkpoint)
    shared, _ = model.user_clusters()
    backbone_name, backbone_users = backbone_users_from_checkpoint(backbone_checkpoint)
    panels = [(f"{config['model']}: shared CF (C_sh)", shared.detach().cpu().numpy()),
              (f"{backbone_name}: final user embeddings", backbone_users)]
    return tsne_pair_plot(panels, model.head.n_clusters, stem, max_points=max_points, random_state=random_state)
