"""Graph utilities and backbones (LightGCNBackbone, SGLBackbone, LightGCL) on a tiny generated dataset.

The fixture has repeated (user, item) rows and items that only occur in valid/test, so the training graph has
duplicates to ignore and zero-degree nodes -- the two places where a normalisation could drift from RecBole's.
"""
import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import ModelType, init_seed

from recbole_darec import Config
from recbole_darec.model import get_model, graph
from recbole_darec.model.backbones import all_node_info_nce

N_USERS, N_ITEMS = 40, 60


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "tiny").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for u in range(N_USERS):
        for i in rng.choice(N_ITEMS - 5, size=rng.integers(8, 16), replace=False):
            rows.append((u, int(i)))
    rows += rows[:25]  # repeated interactions
    rows += [(u, N_ITEMS - 5 + u % 5) for u in range(0, N_USERS, 7)]  # rare items, last in time
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\ti{i}\t{t}" for t, (u, i) in enumerate(rows)]
    (root / "tiny" / "tiny.inter").write_text("\n".join(lines) + "\n")
    return root


def make_config(model, data_dir, **overrides):
    config_dict = {"data_path": str(data_dir), "device": "cpu", "use_gpu": False, "train_batch_size": 64,
                   "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "seed": 2023, "show_progress": False,
                   # time order: the rare items (latest rows) land in valid/test, so train has zero-degree items
                   "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "TO",
                                 "mode": "full"}}
    config_dict.update(overrides)
    return Config(model=model, dataset="tiny", config_dict=config_dict)


@pytest.fixture(scope="module")
def train_data(data_dir):
    config = make_config("LightGCNBackbone", data_dir)
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    return train


@pytest.fixture
def build(data_dir, train_data):
    def _build(model, **overrides):
        config = make_config(model, data_dir, **overrides)
        init_seed(config["seed"], True)
        return get_model(model)(config, train_data.dataset)
    return _build


@pytest.fixture(scope="module")
def batch(train_data):
    return next(iter(train_data))


def dense(adj):
    return torch.stack(adj).to_dense() if isinstance(adj, list) else adj.to_dense()


# ---------------------------------------------------------------- (a) RecBole equivalence
def test_fixture_exercises_duplicates_and_isolated_items(train_data):
    ds = train_data.dataset
    pairs = ds.inter_feat[ds.uid_field] * ds.item_num + ds.inter_feat[ds.iid_field]
    assert torch.unique(pairs).numel() < pairs.numel()
    assert (torch.bincount(ds.inter_feat[ds.iid_field], minlength=ds.item_num)[1:] == 0).any()


def test_lightgcn_backbone_matches_recbole_lightgcn(build, batch):
    ours, theirs = build("LightGCNBackbone"), build("LightGCN")
    assert type(theirs).__module__.startswith("recbole.")  # the baseline name stays RecBole's class
    torch.testing.assert_close(ours.full_graph.to_dense(), theirs.norm_adj_matrix.to_dense(), rtol=1e-6, atol=0)
    assert torch.equal(ours.full_graph.to_dense() != 0, theirs.norm_adj_matrix.to_dense() != 0)
    with torch.no_grad():
        ours.user_embedding.weight.copy_(theirs.user_embedding.weight * 3.0)  # not the shared seed's init
        ours.item_embedding.weight.copy_(theirs.item_embedding.weight * 3.0)
        theirs.user_embedding.weight.mul_(3.0)
        theirs.item_embedding.weight.mul_(3.0)
    for a, b in zip(ours.forward(), theirs.forward()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert torch.allclose(sum(ours.calculate_loss(batch)), theirs.calculate_loss(batch), atol=1e-6)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours.full_sort_predict(batch), theirs.full_sort_predict(batch), atol=1e-6, rtol=0)


def test_interaction_edges_are_unique_and_adjacency_symmetric(build, train_data):
    model = build("LightGCNBackbone")
    users, items = model.inter_users, model.inter_items
    assert torch.unique(users * N_ITEMS * 2 + items).numel() == users.numel()
    adj = dense(model.full_graph)
    assert torch.equal(adj, adj.t())
    assert model.full_graph.nnz() == 2 * users.numel()
    r = dense(graph.norm_interaction(users, items, model.n_users, model.n_items))
    torch.testing.assert_close(adj[: model.n_users, model.n_users:], r, rtol=1e-5, atol=0)


# ---------------------------------------------------------------- (b) conventions and determinism
def test_sum_combine_is_mean_times_layers(build):
    mean, total = build("LightGCNBackbone"), build("LightGCNBackbone", layer_combine="sum")
    total.load_state_dict(mean.state_dict())
    for a, b in zip(mean.forward(), total.forward()):
        torch.testing.assert_close(b, a * (mean.n_layers + 1))


@pytest.mark.parametrize("mode", ["rescale", "renorm"])
def test_edge_dropout_only_in_training(build, mode):
    plain = build("LightGCNBackbone", layer_combine="sum")
    model = build("LightGCNBackbone", layer_combine="sum", edge_keep_prob=0.8, edge_drop_mode=mode)
    model.train()
    first, second = model.forward()[0], model.forward()[0]
    assert not torch.allclose(first, second)
    model.eval(), plain.eval()
    users = {model.USER_ID: torch.arange(1, 6)}
    first = model.full_sort_predict(users).clone()
    model.clear_cache()  # recompute rather than read the cache
    assert torch.equal(first, model.full_sort_predict(users))
    torch.testing.assert_close(model.forward()[0], plain.forward()[0])
    adj = model.full_graph
    model.train()
    dropped = model.train_graph()
    assert 0.7 < int((dense(dropped) != 0).sum()) / adj.nnz() < 0.9
    if mode == "rescale":  # survivors keep their position and are scaled by 1/keep
        kept = dense(dropped) != 0
        torch.testing.assert_close(dense(dropped)[kept], dense(adj)[kept] / 0.8)


def test_cache_cleared_by_train(build):
    model = build("LightGCNBackbone")
    model.eval()
    model.predict({model.USER_ID: torch.tensor([1]), model.ITEM_ID: torch.tensor([2])})
    assert model.restore_user_e is not None
    model.train()
    assert model.restore_user_e is None and model.restore_item_e is None


def test_ego_override_hook(build):
    model = build("LightGCNBackbone")
    ego = model.get_ego_embeddings().detach().clone().requires_grad_(True)
    torch.testing.assert_close(model.forward(ego_override=ego)[0], model.forward()[0])
    masked = ego.clone()
    masked[3] = 0.0
    user_all, _ = model.forward(ego_override=masked)
    assert not torch.allclose(user_all[3], model.forward()[0][3])
    user_all.sum().backward()
    assert ego.grad is not None and ego.grad.abs().sum() > 0


# ---------------------------------------------------------------- (c) LightGCL
def test_lightgcl_svd_factors(build, train_data):
    errors = []
    for q in (2, 8, 24):
        model = build("LightGCL", svd_rank=q)
        assert model.svd_u.shape == (model.n_users, q)
        assert model.svd_s.shape == (q,)
        assert model.svd_v.shape == (model.n_items, q)
        low_rank = model.us @ model.svd_v.t()
        assert torch.linalg.matrix_rank(low_rank) <= q
        target = dense(graph.norm_interaction(model.inter_users, model.inter_items, model.n_users, model.n_items))
        errors.append(torch.linalg.norm(target - low_rank).item())
    assert errors[0] > errors[1] > errors[2]


def test_lightgcl_global_view_matches_layerwise_definition(build):
    model = build("LightGCL", n_layers=3)
    model.train()
    model.forward()
    layers = model.last_layers
    n_u = model.n_users
    us_vt = model.us @ model.svd_v.t()
    g_user, g_item = layers[0][:n_u].clone(), layers[0][n_u:].clone()
    for prev in layers[:-1]:  # G^(l) from the local layer l-1
        g_user = g_user + us_vt @ prev[n_u:]
        g_item = g_item + us_vt.t() @ prev[:n_u]
    got_user, got_item = model.global_view(layers)
    torch.testing.assert_close(got_user, g_user, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_item, g_item, atol=1e-5, rtol=1e-4)


def test_lightgcl_eval_is_deterministic(build, batch):
    model = build("LightGCL", edge_keep_prob=0.75)
    model.train()
    assert not torch.allclose(model.forward()[0], model.forward()[0])
    model.eval()
    users = {model.USER_ID: torch.arange(1, 10)}
    first = model.full_sort_predict(users).clone()
    model.clear_cache()
    assert torch.equal(first, model.full_sort_predict(users))
    assert model.last_layers is None


# ---------------------------------------------------------------- (d) SGL views
def test_sgl_edge_dropout_view_counts(build):
    model = build("SGLBackbone", sgl_view_type="ED", drop_ratio=0.2)
    view = model.make_view()
    assert view.nnz() == 2 * int(model.inter_users.numel() * 0.8)
    rw = build("SGLBackbone", sgl_view_type="RW", drop_ratio=0.2).make_view()
    assert isinstance(rw, list) and len(rw) == model.n_layers
    assert not torch.equal(dense(rw[0]), dense(rw[1]))


def test_sgl_node_dropout_zeroes_nodes(build):
    model = build("SGLBackbone", sgl_view_type="ND", drop_ratio=0.25)
    users, items, user_keep, item_keep = graph.drop_nodes(
        model.inter_users, model.inter_items, model.n_users, model.n_items, 0.25)
    assert (~user_keep).sum() == int(model.n_users * 0.25) and (~item_keep).sum() == int(model.n_items * 0.25)
    adj = dense(graph.sym_norm_adj(users, items, model.n_users, model.n_items))
    dropped = torch.cat([~user_keep, ~item_keep])
    assert adj[dropped].abs().sum() == 0 and adj[:, dropped].abs().sum() == 0
    expected = (user_keep[model.inter_users] & item_keep[model.inter_items]).sum()
    assert users.numel() == expected and (adj != 0).sum() == 2 * expected


@pytest.mark.parametrize("view", ["ED", "ND", "RW"])
def test_sgl_ssl_term_and_view_lifetime(build, batch, view):
    model = build("SGLBackbone", sgl_view_type=view)
    model.train()
    losses = model.calculate_loss(batch)
    assert torch.isfinite(losses[2]) and losses[2] > 0
    views = model.views
    model.calculate_loss(batch)
    assert model.views is views  # one pair of views per epoch
    model.eval(), model.train()
    assert model.views is views  # evaluation between steps marks no epoch
    model.start_training_epoch()
    assert model.views is None  # the plugin's trainer calls the hook before each training epoch


def test_sgl_ssl_matches_recbole_formula(build, batch):
    """Given the same view embeddings, our batch-mean SSL term times the batch size is RecBole's summed one."""
    ours, theirs = build("SGLBackbone"), build("SGL")
    ours.train()
    ours.views = (ours.make_view(), ours.make_view())
    ego = ours.get_ego_embeddings()
    (u1, i1), (u2, i2) = (torch.split(graph.propagate(v, ego, ours.n_layers, "mean"), [ours.n_users, ours.n_items])
                          for v in ours.views)
    users, items = batch[ours.USER_ID], batch[ours.ITEM_ID]
    expected = theirs.calc_ssl_loss(users, items, u1, u2, i1, i2)
    torch.testing.assert_close(ours.ssl_weight * ours.ssl_loss(batch) * len(users), expected, rtol=1e-5, atol=0)


def test_all_node_info_nce_explicit():
    torch.manual_seed(0)
    a, c, index = torch.randn(6, 3), torch.randn(6, 3), torch.tensor([0, 2, 2, 5])
    an, cn = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(c, dim=1)
    sim = an[index] @ cn.t() / 0.5
    expected = -torch.log(torch.exp(sim[torch.arange(4), index]) / torch.exp(sim).sum(1)).mean()
    torch.testing.assert_close(all_node_info_nce(a, c, index, 0.5), expected)
    raw = a[index] @ c.t() / 0.1
    expected = (torch.logsumexp(raw, 1) - raw[torch.arange(4), index].clamp(-5, 5)).mean()
    torch.testing.assert_close(all_node_info_nce(a, c, index, 0.1, cosine=False, pos_clamp=5.0), expected)


def test_sgl_does_not_shadow_model_type(build):
    model = build("SGLBackbone", sgl_view_type="ND")
    assert model.type == ModelType.GENERAL and model.view_type == "ND"
    with pytest.raises(ValueError, match="sgl_view_type"):
        build("SGLBackbone", sgl_view_type="XX")


# ---------------------------------------------------------------- (e) losses and gradients
@pytest.mark.parametrize("name, overrides", [
    ("LightGCNBackbone", {}), ("LightGCNBackbone", {"edge_keep_prob": 0.8, "layer_combine": "sum"}),
    ("SGLBackbone", {}), ("LightGCL", {}), ("LightGCL", {"cl_similarity": "cosine", "edge_keep_prob": 0.75}),
    ("LightGCL", {"cl_negatives": "batch"}), ("SGLBackbone", {"layer_combine": "sum", "ssl_negatives": "batch"}),
])
def test_loss_terms_and_gradients(build, batch, name, overrides):
    model = build(name, **overrides)
    model.train()
    losses = model.calculate_loss(batch)
    assert isinstance(losses, tuple) and len(losses) == len(model.loss_names)
    assert all(t.dim() == 0 and torch.isfinite(t) for t in losses)
    sum(losses).backward()
    for table in (model.user_embedding, model.item_embedding):
        assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0


def test_propagate_against_dense_reference():
    torch.manual_seed(0)
    users, items = torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 1, 1, 0, 2])
    adj = graph.sym_norm_adj(users, items, 3, 3)
    ego = torch.randn(6, 4)
    a = dense(adj)
    expected = (ego + a @ ego + a @ a @ ego) / 3
    torch.testing.assert_close(graph.propagate(adj, ego, 2, "mean"), expected)
    torch.testing.assert_close(graph.propagate([adj, adj], ego, 2, "sum"), expected * 3)
    with pytest.raises(ValueError, match="combine"):
        graph.propagate(adj, ego, 2, "max")
