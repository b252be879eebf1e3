"""Model-side handling of the frozen LLM tables: PCA / whitening (recbole_darec.semantic.whiten), its use by aligned
models, and the lock that serialises writing and loading the semantic files (single_run.dataset_build_lock)."""
import pytest
import torch

from recbole_darec import Config
from recbole_darec.single_run import build
from recbole_darec.semantic.whiten import pca_tables


def anisotropic_tables(n_users=300, n_items=500, d=24, seed=0):
    """Rows with a large common offset and very unequal variances per direction (like sentence embeddings)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, -2, d)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    make = lambda n: ((torch.randn(n, d, generator=g, dtype=torch.float64) * scales) @ rotation.t() + 2.0).float()  # noqa: E731
    users, items = make(n_users), make(n_items)
    user_mask, item_mask = torch.ones(n_users, dtype=torch.bool), torch.ones(n_items, dtype=torch.bool)
    user_mask[0] = item_mask[0] = False  # [PAD]
    user_mask[7] = False  # a user without a profile
    users[~user_mask], items[~item_mask] = 0.0, 0.0
    return users, items, user_mask, item_mask


def test_whitened_components_have_identity_covariance_and_masked_rows_stay_zero():
    users, items, um, im = anisotropic_tables()
    u, i, explained = pca_tables(users, items, um, im, 6)
    assert u.shape == (300, 6) and i.shape == (500, 6) and u.dtype == torch.float32
    rows = torch.cat([u[um], i[im]]).double()
    cov = torch.cov(rows.t())
    assert torch.allclose(cov, torch.eye(6, dtype=torch.float64), atol=1e-4)
    assert rows.mean(0).abs().max() < 1e-4
    assert torch.count_nonzero(u[~um]) == 0 and torch.count_nonzero(i[~im]) == 0
    # variances decay as logspace(0, -2)^2: the top 6 of 24 directions explain most of it
    assert 0.8 < explained < 1.0


def test_pca_without_whitening_keeps_inner_products_of_the_kept_subspace():
    users, items, um, im = anisotropic_tables()
    u, i, explained = pca_tables(users, items, um, im, 24, whiten=False)
    assert explained == pytest.approx(1.0, abs=1e-9)
    centred = torch.cat([users[um], items[im]]).double()
    centred = centred - centred.mean(0)
    reduced = torch.cat([u[um], i[im]]).double()
    assert torch.allclose(reduced @ reduced.t(), centred @ centred.t(), atol=1e-3)  # a rotation: same Gram


def test_pca_is_reproducible_and_rejects_bad_dims():
    users, items, um, im = anisotropic_tables()
    a = pca_tables(users, items, um, im, 4)
    b = pca_tables(users.clone(), items.clone(), um, im, 4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for bad in (0, 25, 2.5, True):
        with pytest.raises(ValueError, match="semantic_pca_dim"):
            pca_tables(users, items, um, im, bad)


def test_aligned_model_uses_the_reduced_tables(quick_config):
    config = Config(model="DaRecLightGCN", dataset="ml-100k", config_dict={**quick_config, "semantic_pca_dim": 32})
    _, (train_data, *_), model, trainer = build(config)
    assert model.user_semantic.shape[1] == model.item_semantic.shape[1] == model.semantic_dim == 32
    assert model.head.llm_shared[0].in_features == 32
    assert "user_semantic" not in model.state_dict()
    losses = trainer._train_epoch(train_data, 0)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses)
    def model_with(dim):
        return build(Config(model="DaRecLightGCN", dataset="ml-100k",
                            config_dict={**quick_config, "semantic_pca_dim": dim}))[2]

    assert model_with(384).semantic_dim == 384  # a cap: tables at most that wide are used as they are
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="semantic_pca_dim"):
            model_with(bad)


def test_darec_reduces_to_256_directions_by_default_and_full_width_on_request(quick_config):
    from recbole_darec.semantic.whiten import pca_tables

    def model(name, **overrides):
        return build(Config(model=name, dataset="ml-100k", config_dict={**quick_config, **overrides}))[2]

    darec = model("DaRecLightGCN")
    assert darec.semantic_dim == 256 and darec.head.llm_shared[0].weight.shape == (144, 256)  # (256 + d=32) // 2
    full = model("DaRecLightGCN", semantic_pca_dim=None)
    assert full.semantic_dim == 384
    user, item, _ = pca_tables(full.user_semantic, full.item_semantic, full.user_semantic_mask,
                               full.item_semantic_mask, 256, whiten=False)  # not whitened: plain projections
    assert torch.equal(darec.user_semantic, user) and torch.equal(darec.item_semantic, item)
    assert model("RLMRecConLightGCN").semantic_dim == 384  # the RLMRec baselines keep their published width


def test_dataset_build_lock_excludes_other_processes(tmp_path):
    """Runs that write the dataset folder's semantic files take turns (see single_run.dataset_build_lock)."""
    import subprocess
    import sys

    from recbole_darec.single_run import dataset_build_lock

    config = {"data_path": str(tmp_path), "dataset": "toy"}
    probe = ("import fcntl, os, sys\n"
             f"fd = os.open({str(tmp_path)!r}, os.O_RDONLY)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n")
    with dataset_build_lock(config):
        held = subprocess.run([sys.executable, "-c", probe], timeout=60).returncode
    free = subprocess.run([sys.executable, "-c", probe], timeout=60).returncode
    assert (held, free) == (3, 0)
    assert list(tmp_path.iterdir()) == []  # no lock file is left behind
    with dataset_build_lock({"data_path": str(tmp_path / "missing"), "dataset": "toy"}):
        pass  # a missing folder takes no lock instead of failing
