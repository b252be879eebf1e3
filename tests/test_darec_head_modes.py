"""Properties of the DaRec head's balance modes: gradient coupling into E^C, the per-node local mode, the
regularisers' sub-sample (recbole_darec.model.alignment; RecBole-free, float64)."""
import pytest
import torch

from recbole_darec.model.alignment import DARec_TERMS, local_structure_loss
from recbole_darec.model.alignment.coupling import normalize_grad, scale_grad

from head_fixtures import D64, gen, make_head, rows


def clustered_pair(n_per=30, k=3, seed=3):
    """CF and LLM rows of the same nodes: k blobs, the LLM side a different random map of the same blobs."""
    g = gen(seed)
    labels = torch.arange(k).repeat_interleave(n_per)
    def side():
        centres = 3 * torch.randn(k, 8, generator=g, dtype=D64)
        return centres[labels] + 0.3 * torch.randn(k * n_per, 8, generator=g, dtype=D64)

    return side(), side()


# --- coupling functions ---------------------------------------------------------------------------------------
def test_normalize_grad_keeps_value_and_direction_and_sets_the_norm():
    x = torch.randn(10, 4, generator=gen(1), dtype=D64, requires_grad=True)
    w = torch.randn(10, 4, generator=gen(2), dtype=D64)
    y = normalize_grad(x, torch.tensor(0.25, dtype=D64))
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert x.grad.norm().item() == pytest.approx(0.25, rel=1e-12)
    assert torch.allclose(x.grad / x.grad.norm(), w / w.norm(), atol=1e-12)


def test_normalize_grad_of_zero_gradient_stays_zero():
    x = torch.randn(5, 3, dtype=D64, requires_grad=True)
    (normalize_grad(x, torch.tensor(1.0, dtype=D64)) * 0.0).sum().backward()
    assert torch.count_nonzero(x.grad) == 0 and torch.isfinite(x.grad).all()


def test_scale_grad_multiplies_only_the_gradient():
    x = torch.randn(6, 2, dtype=D64, requires_grad=True)
    y = scale_grad(x, 0.1)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.1))


# --- structure_grad_scale='relative' ----------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_relative_coupling_sets_the_backbone_gradient_to_lambda_times_reference(lam):
    cf, llm = rows()
    reference = torch.tensor(3e-3, dtype=D64)
    head = make_head(lam=lam, structure_grad_scale="relative")
    out = head(cf, llm, generator=gen(1), backbone_grad_norm=reference)
    sum(out.values()).backward()  # regularisers are detached from E^C (default): only structure terms reach cf
    assert cf.grad.norm().item() == pytest.approx(lam * 3e-3, rel=1e-9)


def test_relative_coupling_leaves_values_and_projector_gradients_unchanged():
    cf, llm = rows()
    results = {}
    for scale, ref in (("none", None), ("relative", torch.tensor(1e-4, dtype=D64))):
        head = make_head(structure_grad_scale=scale, cf_projector="mlp")
        x = cf.detach().clone().requires_grad_(True)
        out = head(x, llm, generator=gen(1), backbone_grad_norm=ref)
        sum(out.values()).backward()
        results[scale] = ([v.item() for v in out.values()], head.cf_shared[0].weight.grad.clone(), x.grad)
    assert results["relative"][0] == pytest.approx(results["none"][0], rel=1e-12)
    assert torch.allclose(results["relative"][1], results["none"][1], rtol=1e-9)
    none_dir = results["none"][2] / results["none"][2].norm()
    assert torch.allclose(results["relative"][2] / results["relative"][2].norm(), none_dir, atol=1e-10)


def test_relative_coupling_without_reference_is_a_clear_error():
    cf, llm = rows()
    with pytest.raises(ValueError, match="backbone_grad_norm"):
        make_head(structure_grad_scale="relative")(cf, llm)


# --- local_mode='assign' ----------------------------------------------------------------------------------------
def test_assign_mode_rewards_per_node_agreement_and_ignores_cluster_labels():
    cf, llm = clustered_pair()
    agree = local_structure_loss(cf, llm, 3, mode="assign", generator=gen(1)).loss.item()
    shuffled = llm[torch.randperm(llm.shape[0], generator=gen(2))]
    disagree = local_structure_loss(cf, shuffled, 3, mode="assign", generator=gen(1)).loss.item()
    assert agree < 0.5 * disagree
    perm = torch.randperm(cf.shape[0], generator=gen(4))  # the same nodes in another order, other labels
    again = local_structure_loss(cf[perm], llm[perm], 3, mode="assign", generator=gen(5)).loss.item()
    assert again == pytest.approx(agree, rel=1e-6)


def test_assign_mode_pulls_a_node_towards_its_llm_cluster():
    """One node sits in CF blob 0 but in LLM blob 1: its descent direction points to CF blob 1."""
    cf, llm = clustered_pair()
    llm[0] = llm[45]  # node 0: CF cluster 0, LLM cluster 1 (nodes 30..59 are blob 1)
    cf.requires_grad_(True)
    local_structure_loss(cf, llm, 3, mode="assign", tau=0.2, generator=gen(1)).loss.backward()
    towards_blob1 = torch.nn.functional.normalize(cf[30:60].mean(0) - cf[0], dim=0).detach()
    step = -cf.grad[0]
    assert torch.dot(step / step.norm(), towards_blob1).item() > 0.3
    others = -cf.grad[1:30]  # nodes whose clusters agree are barely moved compared with node 0
    assert others.norm(dim=1).max() < step.norm()


def test_head_with_assign_mode_and_local_reaching_e_c():
    cf, llm = rows()
    out = make_head(local_mode="assign", local_stopgrad=False, w_global=0.0, w_orth=0.0, w_unif=0.0)(
        cf, llm, generator=gen(1))
    assert out["darec_local"].item() > 0
    out["darec_local"].backward()
    assert cf.grad is not None and cf.grad.norm() > 0


# --- regularisers on a sub-sample -------------------------------------------------------------------------------
def test_reg_sample_runs_the_specific_projectors_on_that_many_rows_only():
    cf, llm = rows()
    seen = []
    head = make_head(reg_sample=40)
    head.llm_specific.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    head.cf_specific.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    head.cf_specific_read = True  # else the CF side's regularisers are skipped (see the next test)
    out = head(cf, llm, generator=gen(1))
    assert seen == [40, 40]
    assert all(torch.isfinite(out[k]) for k in DARec_TERMS) and out["darec_unif"].item() < 0


def test_cf_regularizers_are_skipped_only_where_they_cannot_change_training():
    """Fixed isometry C_sh, stop-gradient regularisers, C_sp read by nobody: the CF side's orth/unif are skipped, and
    every other parameter (and the CF rows) gets exactly the gradient it gets with them; the terms' values then cover
    the LLM side only."""
    def run(read, **modes):
        cf, llm = rows()
        head = make_head(reg_sample=40, **modes)
        head.cf_specific_read = read
        out = head(cf, llm, generator=gen(1))
        sum(out.values()).backward()
        grads = {name: p.grad for name, p in head.named_parameters()}
        return head, out, grads, cf.grad

    head, skipped, grads, cf_grad = run(False)
    assert not head.cf_regularizers_matter
    _, full, grads_full, cf_grad_full = run(True)
    assert all(g is None for name, g in grads.items() if name.startswith("cf_specific"))
    assert all(g is not None for name, g in grads_full.items() if name.startswith("cf_specific"))
    for name, grad in grads.items():
        if not name.startswith("cf_specific") and grad is not None:
            assert torch.equal(grad, grads_full[name]), name
    assert torch.equal(cf_grad, cf_grad_full)
    assert torch.equal(skipped["darec_global"], full["darec_global"])
    assert torch.equal(skipped["darec_local"], full["darec_local"])
    assert skipped["darec_unif"] != full["darec_unif"]  # two projections instead of four
    # where the CF side can matter, nothing is skipped
    for modes in ({"cf_projector": "mlp"}, {"regularizer_stopgrad": False}):
        head, *_ = run(False, **modes)
        assert head.cf_regularizers_matter


# --- global_mode='neighbors' ------------------------------------------------------------------------------------
def test_neighbors_mode_zero_for_same_structure_positive_otherwise_and_teacher_frozen():
    from recbole_darec.model.alignment import global_structure_loss

    cf, llm = clustered_pair()
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen(6), dtype=D64))
    same = global_structure_loss(cf, cf @ rotation, "neighbors", tau=0.1).item()
    assert same == pytest.approx(0.0, abs=1e-9)
    cf.requires_grad_(True)
    llm.requires_grad_(True)
    loss = global_structure_loss(cf, llm[torch.randperm(90, generator=gen(7))], "neighbors", tau=0.1)
    assert loss.item() > 0.5
    loss.backward()
    assert cf.grad.norm() > 0 and llm.grad is None  # the LLM side is the teacher


def test_neighbors_mode_prefers_matching_neighbourhoods():
    from recbole_darec.model.alignment import global_structure_loss

    cf, llm = clustered_pair()  # same clusters on both sides, different geometry
    matched = global_structure_loss(cf, llm, "neighbors", tau=0.1).item()
    shuffled = global_structure_loss(cf, llm[torch.randperm(90, generator=gen(8))], "neighbors", tau=0.1).item()
    assert matched < 0.5 * shuffled


# --- K-means warm start -----------------------------------------------------------------------------------------
def test_warm_start_reuses_the_previous_centres_and_finds_the_same_clusters(monkeypatch):
    import recbole_darec.model.alignment.clustering as clustering

    cf, llm = clustered_pair()
    head = make_head(d_llm=8, kmeans_init="warm", w_global=0.0, w_orth=0.0, w_unif=0.0)
    head.train()
    head(cf, llm, generator=gen(1))
    cold_labels = head.last_local.labels_cf
    assert head._warm_centres is not None and head._warm_centres[0].shape == (3, 8)
    seeded = []
    real = clustering._kmeanspp
    monkeypatch.setattr(clustering, "_kmeanspp", lambda *a, **k: seeded.append(1) or real(*a, **k))
    head(cf, llm, generator=gen(2))
    assert seeded == []  # no k-means++ seeding after the first step
    warm_labels = head.last_local.labels_cf
    pairs = torch.unique(torch.stack([cold_labels, warm_labels]), dim=1)  # same partition: 3 distinct pairs
    assert pairs.shape[1] == 3 and torch.unique(cold_labels).numel() == 3


def test_kmeans_init_is_validated():
    with pytest.raises(ValueError, match="kmeans_init"):
        make_head(kmeans_init="lloyd")


def _global_only(**kw):
    return make_head(w_local=0.0, w_orth=0.0, w_unif=0.0, lam=1.0, **kw)


def test_global_teacher_trains_only_the_cf_side_through_the_global_term():
    cf, llm = rows()
    for teacher in (False, True):
        head = _global_only(global_teacher=teacher, cf_projector="mlp")
        head(cf, llm)["darec_global"].backward()
        llm_grad = sum(float(p.grad.abs().sum()) for p in head.llm_shared.parameters() if p.grad is not None)
        cf_grad = sum(float(p.grad.abs().sum()) for p in head.cf_shared.parameters())
        assert cf_grad > 0
        assert (llm_grad == 0.0) == teacher  # the learnable LLM side can no longer move towards the CF structure


def test_global_teacher_keeps_the_loss_value():
    cf, llm = rows()
    assert torch.equal(_global_only()(cf, llm)["darec_global"], _global_only(global_teacher=True)(cf, llm)["darec_global"])


def test_degree_coupling_scales_each_rows_gradient_by_one_plus_d0_over_degree():
    cf, llm = rows(n=40)
    degree = torch.arange(1, 41)
    grads = []
    for d0 in (0.0, 10.0):
        x = cf.detach().clone().requires_grad_(True)
        _global_only(degree_coupling=d0, structure_grad_scale="none")(x, llm, degree=degree)["darec_global"].backward()
        grads.append(x.grad)
    expected = grads[0] * (1.0 + 10.0 / degree.to(D64)).unsqueeze(1)
    assert torch.allclose(grads[1], expected, rtol=1e-10, atol=1e-14)


def test_degree_coupling_is_validated():
    with pytest.raises(ValueError, match="degree_coupling"):
        make_head(degree_coupling=-1.0)


@pytest.mark.parametrize("pairs", ["cross", "items", "separate"])
def test_global_pairs_use_the_rows_after_masking(pairs):
    """'cross' / 'items' / 'separate' compare the masked rows' user–item / item–item / user–user + item–item
    blocks; n_users counts users before the mask."""
    from recbole_darec.model.alignment import global_structure_loss

    cf, llm = rows()
    n, n_users = cf.shape[0], cf.shape[0] // 3
    mask = torch.ones(n, dtype=torch.bool)
    mask[::5] = False  # some users and some items without a profile
    head = make_head(global_pairs=pairs, global_mode="centered", w_local=0.0, w_orth=0.0, w_unif=0.0, center_llm=False)
    got = head(cf, llm, mask=mask, n_users=n_users)["darec_global"]
    kept_users = int(mask[:n_users].sum())
    c_sh, l_sh = head.cf_shared(cf[mask]), head.llm_shared(llm[mask])
    if pairs == "separate":
        ref = head.lam * (global_structure_loss(c_sh[:kept_users], l_sh[:kept_users], head.study.global_mode)
                          + global_structure_loss(c_sh[kept_users:], l_sh[kept_users:], head.study.global_mode))
    elif pairs == "items":
        ref = head.lam * global_structure_loss(c_sh[kept_users:], l_sh[kept_users:], head.study.global_mode)
    else:
        ref = head.lam * global_structure_loss(c_sh, l_sh, head.study.global_mode, n_first=kept_users)
    assert got.item() == pytest.approx(ref.item(), rel=1e-9)
    with pytest.raises(ValueError, match="n_users"):
        head(cf, llm)
    only_users = head(cf, llm, n_users=n)["darec_global"]
    if pairs == "separate":  # the users' group alone
        full = head.lam * global_structure_loss(head.cf_shared(cf), head.llm_shared(llm), head.study.global_mode)
        assert only_users.item() == pytest.approx(full.item(), rel=1e-9)
    else:  # no item in Ω: the block is empty, the term is 0
        assert only_users.item() == 0.0 and not only_users.requires_grad


# --- global_mode='crossview' ------------------------------------------------------------------------------------
def test_crossview_mode_matches_its_dense_definition_and_rewards_own_views():
    from recbole_darec.model.alignment import global_structure_loss

    cf, llm = clustered_pair()
    got = global_structure_loss(cf, llm, "crossview")
    zc, zl = torch.nn.functional.normalize(cf, dim=1), torch.nn.functional.normalize(llm, dim=1)
    s = zc @ zl.t()
    off = ~torch.eye(s.shape[0], dtype=torch.bool)
    assert got.item() == pytest.approx(((1 - s.diagonal()) ** 2).mean().item() + (s[off] ** 2).mean().item(),
                                       rel=1e-10)
    # the same rows on both sides beat a permutation of them: the diagonal (each node's own view) matters
    own = global_structure_loss(cf, cf, "crossview").item()
    permuted = global_structure_loss(cf, cf[torch.randperm(90, generator=gen(9))], "crossview").item()
    assert own < 0.5 * permuted


def test_crossview_mode_refuses_the_cross_block_and_unequal_widths():
    from recbole_darec.model.alignment import global_structure_loss

    cf, llm = rows()
    with pytest.raises(ValueError, match="crossview"):
        make_head(global_mode="crossview", global_pairs="cross")
    with pytest.raises(ValueError, match="n_first"):
        global_structure_loss(cf, cf, "crossview", n_first=3)
    with pytest.raises(ValueError, match="same shape"):
        global_structure_loss(cf, cf[:, :4], "crossview")


# --- cf_projector ------------------------------------------------------------------------------------------------
def test_cf_projector_kinds():
    from recbole_darec.model.alignment.projectors import cf_projector

    x = torch.randn(20, 8, generator=gen(4))
    iso = cf_projector(8, 8, "isometry")
    assert not any(p.requires_grad for p in iso.parameters())  # fixed: the alignment must move E^C
    y = iso(x)
    assert torch.allclose(y @ y.t(), x @ x.t(), atol=1e-4)  # inner products (and norms) kept
    linear = cf_projector(8, 4, "linear")
    assert len(linear) == 1 and all(p.requires_grad for p in linear.parameters())
    with pytest.raises(ValueError, match="isometry"):
        cf_projector(8, 8, "identity")
    head = make_head(cf_projector="isometry")
    assert not head.cf_shared[0].weight.requires_grad and len(head.cf_specific) == 3  # specific: still an MLP
    with pytest.raises(ValueError, match="cf_projector"):
        make_head(cf_projector="conv")


def test_degree_decay_scales_each_rows_structure_gradient_by_d1_over_d1_plus_degree():
    cf, llm = rows(n=40)
    degree = torch.arange(40)  # a node without training interactions keeps its full gradient
    grads = []
    for d1 in (0.0, 5.0):
        x = cf.detach().clone().requires_grad_(True)
        _global_only(degree_decay=d1, structure_grad_scale="none")(x, llm, degree=degree)["darec_global"].backward()
        grads.append(x.grad)
    expected = grads[0] * (5.0 / (5.0 + degree.to(D64))).unsqueeze(1)
    assert torch.allclose(grads[1], expected, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="degree_decay"):
        make_head(degree_decay=-1.0)
