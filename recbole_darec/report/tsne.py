"""The paper's "interest clusters" figure: t-SNE of users' shared CF representations, coloured by local cluster.

Input is a saved checkpoint of a DaRec model (anything with ``user_clusters()``); the model, dataset and config are
rebuilt from it with :func:`recbole_darec.quick_start.load_data_and_model` (safe torch load).
"""
import numpy as np

from recbole_darec.report.plots import plt, save_figure

DEFAULT_MAX_POINTS = 5000  # t-SNE is O(n log n) but slow on 2 cores past a few thousand points


def embed_2d(points, random_state=0):
    """t-SNE to 2-D with a fixed seed (the same checkpoint always gives the same picture)."""
    from sklearn.manifold import TSNE

    n = len(points)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))  # sklearn requires perplexity < n
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(points)


def user_clusters_from_checkpoint(checkpoint):
    """(model name, shared user representations as numpy, K-means labels) from a DaRec checkpoint."""
    from recbole_darec.quick_start import load_data_and_model
    from recbole_darec.config import recbole_environment

    with recbole_environment():
        config, model, *_ = load_data_and_model(str(checkpoint))
    if not hasattr(model, "user_clusters"):
        raise ValueError(f"{checkpoint}: model {config['model']} has no alignment clusters (not a DaRec model)")
    model.eval()  # no edge dropout or masking while reading representations
    shared, labels = model.user_clusters()
    return config["model"], shared.detach().cpu().numpy(), labels.detach().cpu().numpy()


def tsne_plot(shared, labels, stem, title, max_points=DEFAULT_MAX_POINTS, random_state=0):
    """Scatter of the 2-D t-SNE of ``shared`` coloured by ``labels``; returns (paths, info dict)."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(random_state)
    index = np.arange(len(shared))
    if len(index) > max_points:
        index = np.sort(rng.choice(index, size=max_points, replace=False))
    points, labels = shared[index], labels[index]
    xy = embed_2d(points, random_state=random_state)
    clusters = sorted(set(labels.tolist()))
    # Silhouette in the representation space (cosine: K-means ran on normalised rows): do the clusters separate?
    silhouette = float(silhouette_score(points, labels, metric="cosine")) if 1 < len(clusters) < len(points) else None
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    cmap = plt.get_cmap("tab10" if len(clusters) <= 10 else "tab20")
    for i, cluster in enumerate(clusters):
        mask = labels == cluster
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.75, color=cmap(i % cmap.N),
                   label=f"cluster {cluster} ({int(mask.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    subtitle = f"{len(points)} users, K={len(clusters)}" + (f", silhouette {silhouette:.2f}" if silhouette else "")
    ax.set_title(f"{title}\n{subtitle}", fontsize=9)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    info = {"users": int(len(points)), "clusters": {int(c): int((labels == c).sum()) for c in clusters},
            "silhouette_cosine": silhouette}
    return save_figure(fig, stem), info


def tsne_from_checkpoint(checkpoint, stem, max_points=DEFAULT_MAX_POINTS, random_state=0):
    """Write ``<stem>.png``/``.pdf`` for a DaRec checkpoint; returns (paths, info dict)."""
    model_name, shared, labels = user_clusters_from_checkpoint(checkpoint)
    title = f"{model_name}: users' shared CF representations (t-SNE), by local cluster"
    return tsne_plot(shared, labels, stem, title, max_points=max_points, random_state=random_state)
