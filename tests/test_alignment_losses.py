"""Property tests for the RecBole-free alignment blocks (recbole_darec.model.alignment)."""
import math

import pytest
import torch
import torch.nn.functional as F

from recbole_darec.model.alignment import (
    DARec_TERMS, DaRecHead, RLMRecConHead, RLMRecGenHead, TooFewPointsError, cf_projector, cluster_centres,
    global_structure_loss, grad_norms, info_nce, kmeans, llm_projector, local_structure_loss, match_clusters,
    orthogonality_loss, uniformity_loss, uniformity_losses,
)

from head_fixtures import D64, gen, head_args, make_head, rows


def rand_orth(d_in, d_out, g):
    """(d_in, d_out) matrix with orthonormal rows (d_out >= d_in): preserves inner products."""
    q, _ = torch.linalg.qr(torch.randn(d_out, d_out, generator=g, dtype=D64))
    return q[:d_in]


def blobs(n_per, k, d, g, spread=0.05):
    centres = F.normalize(torch.randn(k, d, generator=g, dtype=D64), dim=1) * 5
    x = centres.repeat_interleave(n_per, 0) + spread * torch.randn(n_per * k, d, generator=g, dtype=D64)
    return x, torch.arange(k).repeat_interleave(n_per)


def same_partition(a, b):
    """True when labelings a and b induce the same partition (up to renaming)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# --- orthogonality / uniformity ------------------------------------------------------------------------------
def test_orthogonality_zero_for_orthogonal_rows_and_positive_otherwise():
    g = gen()
    s = torch.cat([torch.randn(50, 4, generator=g, dtype=D64), torch.zeros(50, 4, dtype=D64)], 1)
    p = torch.cat([torch.zeros(50, 4, dtype=D64), torch.randn(50, 4, generator=g, dtype=D64)], 1)
    q = rand_orth(8, 8, g)  # a common rotation keeps every pair orthogonal
    assert orthogonality_loss(s @ q, p @ q).item() == pytest.approx(0.0, abs=1e-14)
    assert orthogonality_loss(s, 3.0 * s).item() == pytest.approx(1.0, abs=1e-12)
    half = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=D64)
    sixty = torch.tensor([[0.5, math.sqrt(0.75)], [0.0, -1.0]], dtype=D64)  # cosines 0.5 and -1
    assert orthogonality_loss(half, sixty).item() == pytest.approx((0.25 + 1.0) / 2, rel=1e-12)


def test_uniformity_matches_definition_and_prefers_spread_points():
    g = gen()
    x = torch.randn(60, 5, generator=g, dtype=D64)
    z = F.normalize(x, dim=1)
    off = ~torch.eye(60, dtype=torch.bool)
    ref = torch.log(torch.exp(-2.0 * torch.cdist(z, z).pow(2)[off]).mean())
    assert uniformity_loss(x).item() == pytest.approx(ref.item(), rel=1e-10)
    collapsed = torch.ones(60, 5, dtype=D64) + 1e-3 * torch.randn(60, 5, generator=g, dtype=D64)
    assert uniformity_loss(torch.ones(60, 5, dtype=D64)).item() == pytest.approx(0.0, abs=1e-12)
    assert uniformity_loss(x).item() < uniformity_loss(collapsed).item() - 1.0
    with pytest.raises(ValueError, match="at least 2 rows"):
        uniformity_loss(x[:1])


def test_uniformity_losses_batched_value_and_gradient_match_autograd_per_part():
    g = gen(3)
    parts = [torch.randn(40, 6, generator=g, dtype=D64, requires_grad=True) for _ in range(3)]
    weights = torch.tensor([1.0, -0.5, 2.0], dtype=D64)
    got = uniformity_losses(parts, 1.5)

    def by_definition(x):  # plain autograd, no hand-written backward
        z = F.normalize(x, dim=1)
        off = ~torch.eye(x.shape[0], dtype=torch.bool)
        return torch.log(torch.exp(-1.5 * (z.unsqueeze(1) - z.unsqueeze(0)).pow(2).sum(-1)[off]).mean())

    ref = torch.stack([by_definition(p) for p in parts])
    assert torch.allclose(got, ref, rtol=0, atol=1e-12)
    grads = torch.autograd.grad((weights * got).sum(), parts)
    ref_grads = torch.autograd.grad((weights * ref).sum(), parts)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    # a large temperature (every pair's kernel far below float range) stays finite
    assert torch.isfinite(uniformity_losses([p.detach().float() for p in parts], 200.0)).all()
    with pytest.raises(ValueError, match="same-shape"):
        uniformity_losses([parts[0], parts[1][:10]])


# --- global structure -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["mse", "centered", "standardized"])
def test_global_zero_under_rotation_positive_for_unrelated(mode):
    g = gen(1)
    c = torch.randn(80, 6, generator=g, dtype=D64)
    rotated = (c * 2.5) @ rand_orth(6, 10, g)  # same similarities, other width and scale
    assert global_structure_loss(c, rotated, mode).item() == pytest.approx(0.0, abs=1e-10)
    other = torch.randn(80, 10, generator=g, dtype=D64)
    assert global_structure_loss(c, other, mode).item() > 1e-3


@pytest.mark.parametrize("mode", ["mse", "centered", "standardized"])
def test_global_gram_form_matches_dense_definition(mode):
    g = gen(2)
    a, b = torch.randn(40, 5, generator=g, dtype=D64), torch.randn(40, 7, generator=g, dtype=D64) + 0.7
    sa, sb = (F.normalize(v, dim=1) @ F.normalize(v, dim=1).t() for v in (a, b))
    off = ~torch.eye(40, dtype=torch.bool)
    if mode == "mse":
        ref = (sa - sb).pow(2).mean()
    else:
        xa, xb = sa[off] - sa[off].mean(), sb[off] - sb[off].mean()
        if mode == "standardized":
            xa, xb = xa / xa.pow(2).mean().sqrt(), xb / xb.pow(2).mean().sqrt()
        ref = (xa - xb).pow(2).mean()
    assert global_structure_loss(a, b, mode).item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("mode", ["mse", "centered", "standardized", "neighbors"])
def test_global_cross_block_matches_dense_definition(mode):
    """global_pairs='cross': only the users × items block of S (rows [:n_first] against the rest) is compared."""
    g = gen(4)
    a, b = torch.randn(30, 5, generator=g, dtype=D64), torch.randn(30, 7, generator=g, dtype=D64) + 0.5
    n_u = 12
    sa, sb = ((F.normalize(v, dim=1)[:n_u] @ F.normalize(v, dim=1)[n_u:].t()) for v in (a, b))
    if mode == "neighbors":
        kl = lambda t, s: (F.softmax(t, 1) * (F.log_softmax(t, 1) - F.log_softmax(s, 1))).sum(1).mean()  # noqa: E731
        ref = 0.5 * (kl(sb / 0.1, sa / 0.1) + kl(sb.t() / 0.1, sa.t() / 0.1))
    else:
        xa, xb = sa.flatten(), sb.flatten()
        if mode != "mse":
            xa, xb = xa - xa.mean(), xb - xb.mean()
        if mode == "standardized":
            xa, xb = xa / xa.pow(2).mean().sqrt(), xb / xb.pow(2).mean().sqrt()
        ref = (xa - xb).pow(2).mean()
    got = global_structure_loss(a, b, mode, tau=0.1, n_first=n_u)
    assert got.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    assert got.item() != pytest.approx(global_structure_loss(a, b, mode, tau=0.1).item())  # not all pairs
    with pytest.raises(ValueError, match="n_first"):
        global_structure_loss(a, b, mode, n_first=30)


def test_global_anisotropic_llm_side_only_penalised_by_mse():
    # z_l = [sqrt(a) z_c, sqrt(1-a) e]: cos_L = a cos_C + (1-a), a uniformly high-cosine copy of the CF structure
    g = gen(3)
    zc = F.normalize(torch.randn(70, 6, generator=g, dtype=D64), dim=1)
    alpha = 0.3
    zl = torch.cat([math.sqrt(alpha) * zc, math.sqrt(1 - alpha) * torch.ones(70, 1, dtype=D64)], 1)
    mse = global_structure_loss(zc, zl, "mse").item()
    centered = global_structure_loss(zc, zl, "centered").item()
    assert mse > 0.3
    assert 0.0 < centered < 0.5 * mse
    assert global_structure_loss(zc, zl, "standardized").item() == pytest.approx(0.0, abs=1e-10)


# --- k-means / centres / matching -----------------------------------------------------------------------------
def test_kmeans_recovers_separated_blobs_and_is_deterministic():
    x, truth = blobs(30, 4, 6, gen(4))
    labels, centres = kmeans(x, 4, generator=gen(9))
    assert labels.shape == (120,) and centres.shape == (4, 6)
    assert same_partition(labels, truth)
    again, _ = kmeans(x, 4, generator=gen(9))
    assert torch.equal(labels, again)


def test_kmeans_batched_sets_equal_separate_runs_and_stop_at_a_fixed_point():
    g = gen(6)
    a, _ = blobs(25, 4, 5, g)
    b = torch.randn(100, 5, generator=g, dtype=D64)
    labels, centres = kmeans(torch.stack([a, b]), 4, iters=25, generator=gen(1))
    g_sep = gen(1)  # the sets are seeded in order from the same generator
    for i, x in enumerate((a, b)):
        alone = kmeans(x, 4, iters=25, generator=g_sep)
        assert torch.equal(labels[i], alone[0]) and torch.equal(centres[i], alone[1])
    # once the labels stop changing, more iterations return exactly the same result
    more = kmeans(torch.stack([a, b]), 4, iters=200, init=centres)
    assert torch.equal(more[0], labels) and torch.equal(more[1], centres)
    with pytest.raises(ValueError, match=r"shape \(2, 4, 5\)"):
        kmeans(torch.stack([a, b]), 4, init=centres[0])


def test_kmeans_duplicates_and_empty_cluster_reseed_never_nan():
    g = gen(5)
    distinct = torch.randn(3, 4, generator=g, dtype=D64)
    x = distinct.repeat(40, 1)  # 120 rows, 3 distinct points
    labels, centres = kmeans(x, 3, generator=g)
    assert torch.isfinite(centres).all() and torch.bincount(labels, minlength=3).min() > 0
    # a warm start with a centre far from every point leaves that cluster empty in the first update
    init = torch.cat([distinct[:2], torch.full((1, 4), 1e3, dtype=D64)])
    labels, centres = kmeans(x, 3, init=init)
    assert torch.isfinite(centres).all()
    assert torch.bincount(labels, minlength=3).min() > 0


@pytest.mark.parametrize("dtype", [D64, torch.float32])
def test_kmeans_sync_free_path_gives_the_host_paths_results(dtype):
    """The GPU path (no host waits: every iteration runs, empties re-seeded by mask, k-means++ draws kept as
    tensors) returns exactly what the host path returns, forced here on the CPU."""
    g = gen(11)
    a, _ = blobs(40, 4, 8, g)
    sets = torch.stack([a, torch.randn(160, 8, generator=g, dtype=D64)]).to(dtype)
    for iters in (1, 3, 25):  # 25: the host path stops early at its fixed point
        host = kmeans(sets, 4, iters=iters, generator=gen(2), sync_free=False)
        free = kmeans(sets, 4, iters=iters, generator=gen(2), sync_free=True)
        assert torch.equal(host[0], free[0]) and torch.equal(host[1], free[1])
    # warm starts that leave one cluster of the first set and two of the second empty in the first update
    far = torch.full((1, 8), 1e3, dtype=dtype)
    init = torch.stack([torch.cat([sets[0, :3], far]), torch.cat([sets[1, :2], far, -far])])
    host, free = (kmeans(sets, 4, iters=6, init=init, sync_free=flag) for flag in (False, True))
    assert torch.equal(host[0], free[0]) and torch.equal(host[1], free[1])
    assert all(torch.bincount(labels, minlength=4).min() > 0 for labels in free[0])
    # too few distinct points: the same error, raised once after seeding
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0]] * 5, dtype=dtype)
    for flag in (False, True):
        with pytest.raises(TooFewPointsError, match=r"k=3.*2 distinct of 10 rows"):
            kmeans(x, 3, sync_free=flag)


def test_kmeans_rejects_too_many_clusters_with_values():
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0]] * 5, dtype=D64)
    with pytest.raises(ValueError, match=r"k=3.*2 distinct of 10 rows"):
        kmeans(x, 3)
    with pytest.raises(TooFewPointsError):
        kmeans(x, 3)
    with pytest.raises(ValueError, match="got 1"):
        kmeans(x, 1)


def test_cluster_centres_means_empty_rows_and_gradient():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], dtype=D64, requires_grad=True)
    centres, valid = cluster_centres(x, torch.tensor([0, 0, 2]), 3)
    assert torch.allclose(centres, torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]], dtype=D64))
    assert valid.tolist() == [True, False, True]
    centres[0, 0].backward()
    assert torch.allclose(x.grad[:, 0], torch.tensor([0.5, 0.5, 0.0], dtype=D64))


def test_match_clusters_recovers_known_permutation():
    g = gen(6)
    p_cf = torch.randn(6, 8, generator=g, dtype=D64)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    p_llm = torch.empty_like(p_cf)
    p_llm[perm] = 2.0 * p_cf + 0.05 * torch.randn(6, 8, generator=g, dtype=D64)  # CF k -> LLM perm[k]
    assert torch.equal(match_clusters(p_cf, p_llm), perm)


# --- local structure ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["mse", "infonce"])
def test_local_invariant_to_row_order_and_zero_for_identical_sides(mode):
    x, _ = blobs(25, 4, 6, gen(7))
    y = x @ rand_orth(6, 6, gen(8)) + 0.3  # same clusters, rotated centres
    base = local_structure_loss(x, y, 4, mode=mode, generator=gen(1))
    perm = torch.randperm(100, generator=gen(2))
    shuffled = local_structure_loss(x, y[perm], 4, mode=mode, generator=gen(3))  # LLM rows reordered
    assert shuffled.loss.item() == pytest.approx(base.loss.item(), rel=1e-9)
    assert base.labels_cf.shape == (100,) and bool(base.valid.all())
    if mode == "mse":
        assert local_structure_loss(x, x, 4, generator=gen(1)).loss.item() == pytest.approx(0.0, abs=1e-12)


def test_local_infonce_lower_when_centres_match():
    x, _ = blobs(25, 4, 6, gen(10))
    aligned = local_structure_loss(x, x, 4, mode="infonce", tau=0.1, generator=gen(1)).loss
    unrelated = local_structure_loss(x, torch.randn(100, 6, generator=gen(11), dtype=D64), 4,
                                     mode="infonce", tau=0.1, generator=gen(1)).loss
    assert aligned.item() < 0.05 < unrelated.item()


def test_local_gradient_reaches_cf_rows_and_checks_widths():
    x, _ = blobs(10, 3, 4, gen(12))
    x.requires_grad_(True)
    y = torch.randn(30, 4, generator=gen(13), dtype=D64)
    res = local_structure_loss(x, y, 3, generator=gen(1))
    res.loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.norm() > 0
    with pytest.raises(ValueError, match="same shape"):
        local_structure_loss(x, torch.randn(30, 5, dtype=D64), 3)


@pytest.mark.parametrize("mode", ["mse", "infonce"])
def test_local_empty_cluster_is_excluded_not_nan(monkeypatch, mode):
    import recbole_darec.model.alignment.losses as losses

    real = losses.kmeans
    calls = []

    def fake(x, k, **kw):  # first call (CF side): put everything in clusters 0 and 1, cluster 2 empty
        labels, centres = real(x, k, **kw)
        calls.append(1)
        return (labels.clamp_max(1) if len(calls) == 1 else labels), centres

    monkeypatch.setattr(losses, "kmeans", fake)
    x, _ = blobs(10, 3, 4, gen(16))
    x.requires_grad_(True)
    res = local_structure_loss(x, x.detach() + 0.01, 3, mode=mode, generator=gen(1))
    assert int(res.valid.sum()) == 2 and torch.isfinite(res.loss)
    res.loss.backward()
    assert torch.isfinite(x.grad).all()


# --- DaRec head -----------------------------------------------------------------------------------------------
def grads_of(module):
    return [p.grad for p in module.parameters()]


def test_head_returns_all_terms_finite_and_weighted():
    cf, llm = rows()
    full = make_head(lam=1.0)(cf, llm, generator=gen(1))
    assert set(full) == set(DARec_TERMS) and all(torch.isfinite(v) and v.dim() == 0 for v in full.values())
    half = make_head(lam=0.5, w_local=2.0)(cf, llm, generator=gen(1))
    assert half["darec_global"].item() == pytest.approx(0.5 * full["darec_global"].item(), rel=1e-12)
    assert half["darec_local"].item() == pytest.approx(full["darec_local"].item(), rel=1e-12)


@pytest.mark.parametrize("stopgrad", [True, False])
def test_head_gradient_routing(stopgrad):
    cf, llm = rows()
    head = make_head(regularizer_stopgrad=stopgrad, cf_projector="mlp")
    out = head(cf, llm, generator=gen(1))
    (out["darec_global"] + out["darec_local"]).backward(retain_graph=True)
    assert cf.grad is not None and cf.grad.norm() > 0
    assert all(g is not None and g.norm() > 0 for g in grads_of(head.cf_shared))
    assert all(g is not None and g.norm() > 0 for g in grads_of(head.llm_shared))
    assert all(g is None for g in grads_of(head.cf_specific) + grads_of(head.llm_specific))
    assert llm.grad is None
    cf.grad = None
    (out["darec_orth"] + out["darec_unif"]).backward()
    assert all(g is not None and g.norm() > 0 for g in grads_of(head.cf_specific) + grads_of(head.llm_specific))
    if stopgrad:
        assert cf.grad is None
    else:
        assert cf.grad is not None and cf.grad.norm() > 0


@pytest.mark.parametrize("local_stopgrad", [True, False])
def test_local_stopgrad_keeps_the_local_term_off_the_backbone(local_stopgrad):
    cf, llm = rows()
    head = make_head(local_stopgrad=local_stopgrad, w_global=0.0, w_orth=0.0, w_unif=0.0, cf_projector="mlp")
    out = head(cf, llm, generator=gen(1))
    assert out["darec_local"].item() > 0
    out["darec_local"].backward()
    assert all(g is not None and g.norm() > 0 for g in grads_of(head.cf_shared))  # projector still learns
    if local_stopgrad:
        assert cf.grad is None
    else:
        assert cf.grad is not None and cf.grad.norm() > 0


def test_head_lambda_zero_is_inert():
    cf, llm = rows()
    head = make_head(lam=0.0)
    out = head(cf, llm, generator=gen(1))
    assert all(v.item() == 0.0 and not v.requires_grad for v in out.values())
    (sum(out.values()) + (cf * 0).sum()).backward()
    assert all(p.grad is None for p in head.parameters())
    assert torch.count_nonzero(cf.grad) == 0


def test_head_masked_rows_contribute_nothing():
    cf, llm = rows()
    mask = torch.ones(120, dtype=torch.bool)
    mask[::4] = False
    head = make_head()
    base = head(cf, llm, mask=mask, generator=gen(1))
    cf2, llm2 = cf.detach().clone(), llm.clone()
    cf2[~mask] = 5.0 * torch.randn(30, 8, dtype=D64)
    llm2[~mask] = 0.0  # e.g. a missing profile
    other = head(cf2.requires_grad_(True), llm2, mask=mask, generator=gen(1))
    for k in DARec_TERMS:
        assert other[k].item() == pytest.approx(base[k].item(), rel=1e-12, abs=1e-15)
    sum(other.values()).backward()
    assert torch.count_nonzero(cf2.grad[~mask]) == 0


def test_center_llm_removes_common_offset():
    cf, llm = rows()
    offset = 3.0 * torch.randn(16, generator=gen(17), dtype=D64)
    for center, same in ((True, True), (False, False)):
        head = make_head(center_llm=center)
        a = head(cf, llm, generator=gen(1))
        b = head(cf, llm + offset, generator=gen(1))
        diff = max(abs(a[k].item() - b[k].item()) for k in DARec_TERMS)
        assert (diff < 1e-10) == same


def test_structure_grad_scale_changes_only_backbone_gradient():
    cf, llm = rows()
    vals, grads, proj = {}, {}, {}
    for scale in ("none", "auto"):
        head = make_head(structure_grad_scale=scale, w_orth=0.0, w_unif=0.0, cf_projector="mlp")
        x = cf.detach().clone().requires_grad_(True)
        out = head(x, llm, generator=gen(1))
        sum(out.values()).backward()
        vals[scale], grads[scale] = [v.item() for v in out.values()], x.grad
        proj[scale] = head.cf_shared[0].weight.grad
    assert vals["auto"] == pytest.approx(vals["none"], rel=1e-12)
    factor = cf.detach().pow(2).sum(1).mean()
    assert torch.allclose(grads["auto"], factor * grads["none"], rtol=1e-9, atol=1e-18)
    assert torch.allclose(proj["auto"], proj["none"], rtol=1e-9)


def test_warmup_ramps_lambda_in_training_only_and_is_checkpointed():
    cf, llm = rows()
    head = make_head(warmup_steps=4, w_local=0.0, w_orth=0.0, w_unif=0.0)
    ref = make_head(w_local=0.0, w_orth=0.0, w_unif=0.0)(cf, llm)["darec_global"].item()
    got = [head(cf, llm)["darec_global"].item() for _ in range(5)]
    assert got == pytest.approx([ref * f for f in (0.25, 0.5, 0.75, 1.0, 1.0)], rel=1e-12)
    fresh = make_head(warmup_steps=4, w_local=0.0, w_orth=0.0, w_unif=0.0).eval()
    assert [fresh(cf, llm)["darec_global"].item() for _ in range(2)] == pytest.approx([0.25 * ref] * 2)
    fresh.load_state_dict(head.state_dict())
    assert fresh.effective_lambda() == pytest.approx(fresh.lam)


def test_head_degenerate_batches_never_nan():
    head = make_head(n_clusters=4)
    cf, llm = rows(n=12)
    dup_cf = cf.detach()[:3].repeat(4, 1).requires_grad_(True)  # 3 distinct rows < K: local term skipped
    out = head(dup_cf, llm, generator=gen(1))
    assert out["darec_local"].item() == 0.0
    assert all(torch.isfinite(v) for v in out.values())
    one = head(cf[:1], llm[:1])
    assert all(v.item() == 0.0 for v in one.values())
    users, items = DaRecHead.sample_nodes(torch.tensor([1, 1, 2]), torch.tensor([5, 6, 5]), 4096)
    assert users.tolist() == [1, 2] and items.tolist() == [5, 6]  # N̂ larger than the batch: all of it


def test_sample_nodes_caps_and_stays_inside_batch():
    g = gen(14)
    u, i = torch.randint(0, 500, (2048,), generator=g), torch.randint(0, 800, (2048,), generator=g)
    users, items = DaRecHead.sample_nodes(u, i, 300, gen(1))
    assert users.numel() + items.numel() == 300
    assert users.unique().numel() == users.numel() and items.unique().numel() == items.numel()
    assert torch.isin(users, u).all() and torch.isin(items, i).all()
    assert users.numel() > 50 and items.numel() > 50  # both kinds are drawn
    again = DaRecHead.sample_nodes(u, i, 300, gen(1))
    assert torch.equal(again[0], users) and torch.equal(again[1], items)


def test_sample_groups_keeps_each_groups_counts_and_caps_over_all_rows():
    users, pos, neg = torch.tensor([3, 1, 3, 3]), torch.tensor([7, 7, 2, 9]), torch.tensor([9, 4, 4, 5])
    (u, p, n), (cu, cp, cn) = DaRecHead.sample_groups((users, pos, neg), 4096)
    assert u.tolist() == [1, 3] and cu.tolist() == [1, 3]
    assert p.tolist() == [2, 7, 9] and cp.tolist() == [1, 2, 1]
    assert n.tolist() == [4, 5, 9] and cn.tolist() == [2, 1, 1]  # item 9 is in two groups, counted in each
    g = gen(3)
    groups = [torch.randint(0, m, (2048,), generator=g) for m in (400, 600, 900)]
    ids, counts = DaRecHead.sample_groups(groups, 500, gen(1))
    assert sum(len(i) for i in ids) == 500 and all(len(i) > 50 for i in ids)  # every group is drawn from
    for group, group_ids, group_counts in zip(groups, ids, counts):
        full_ids, full_counts = torch.unique(group, return_counts=True)
        assert torch.equal(group_counts, full_counts[torch.searchsorted(full_ids, group_ids)])
    again = DaRecHead.sample_groups(groups, 500, gen(1))
    assert all(torch.equal(a, b) for a, b in zip(again[0], ids))


def test_global_term_over_count_weighted_groups_equals_the_expanded_batch():
    """Ω = (users, positives, negatives) with counts: the global term is one count-weighted InfoNCE per group, the
    value of the batch with every repeat spelt out."""
    head = make_head(global_mode="crossview_nce", global_pairs="separate", global_tau=0.2, w_local=0.0,
                     w_orth=0.0, w_unif=0.0, degree_decay=0.0)
    cf, llm = rows(n=9)
    groups, counts = (3, 4, 2), torch.tensor([1, 3, 2, 1, 1, 2, 4, 1, 2])
    got = head(cf, llm, groups=groups, counts=counts)["darec_global"]
    expanded = torch.repeat_interleave(torch.arange(9), counts)
    llm_c = llm - llm.mean(0, keepdim=True)  # the head centres Ω's LLM rows (darec_center_llm)
    c_sh, l_sh = head.cf_shared(cf), head.llm_shared(llm_c)
    want = 0.0
    for a, b in ((0, 3), (3, 7), (7, 9)):
        rows_ab = expanded[(expanded >= a) & (expanded < b)]
        want = want + info_nce(c_sh[rows_ab], l_sh[rows_ab], 0.2)
    torch.testing.assert_close(got, head.lam * want)
    masked = head(cf, llm, groups=groups, counts=counts, mask=torch.tensor([1, 1, 1, 1, 1, 1, 1, 0, 0]).bool())
    assert masked["darec_global"] < got  # the negatives' group (all masked) drops out
    with pytest.raises(ValueError, match="only 'crossview_nce' takes counts"):
        make_head(global_mode="crossview", global_pairs="separate")(cf, llm, groups=groups, counts=counts)
    with pytest.raises(ValueError, match="summing to the 9 rows"):
        head(cf, llm, groups=(3, 4), counts=counts)


def test_cluster_labels_and_reg_sample():
    cf, llm = rows()
    head = make_head(reg_sample=40)
    labels = head.cluster_labels(cf.detach(), generator=gen(1))
    assert labels.shape == (120,) and set(labels.tolist()) <= {0, 1, 2}
    assert torch.isfinite(head(cf, llm, generator=gen(1))["darec_unif"])


@pytest.mark.parametrize("kwargs,name", [
    (dict(n_clusters=1), "n_clusters"), (dict(sample_size=1), "sample_size"), (dict(lam=-0.1), "lam"),
    (dict(n_clusters=8, sample_size=4), "n_clusters"), (dict(w_local=-1.0), "w_local"),
    (dict(reg_sample=1), "reg_sample"), (dict(local_mode="l1"), "local_mode"),
    (dict(global_mode="cos"), "global_mode"), (dict(structure_grad_scale="big"), "structure_grad_scale"),
    (dict(structure_grad_scale=-1.0), "structure_grad_scale"), (dict(warmup_steps=-1), "warmup_steps"),
    (dict(d_proj=0), "d_proj"), (dict(local_tau=0.0), "local_tau"), (dict(lam=float("nan")), "lam"),
])
def test_head_validation_names_parameter(kwargs, name):
    args = dict(d_cf=8, d_llm=16)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        DaRecHead(**head_args(**args))
    with pytest.raises(ValueError, match="sample_size"):
        DaRecHead.sample_nodes(torch.arange(3), torch.arange(3), 1)


def test_projector_shapes():
    assert [m.weight.shape for m in llm_projector(384, 64) if hasattr(m, "weight")] == [(224, 384), (64, 224)]
    assert [m.weight.shape for m in cf_projector(32, 64) if hasattr(m, "weight")] == [(64, 32), (64, 64)]
    with pytest.raises(ValueError, match="d_llm"):
        llm_projector(0, 8)


# --- RLMRec heads ---------------------------------------------------------------------------------------------
def test_info_nce_matched_pairs_beat_shuffled():
    g = gen(15)
    a = torch.randn(64, 8, generator=g, dtype=D64)
    b = a + 0.1 * torch.randn(64, 8, generator=g, dtype=D64)
    matched = info_nce(a, b, 0.2).item()
    shuffled = info_nce(a, b[torch.randperm(64, generator=g)], 0.2).item()
    assert matched < 0.5 * math.log(64) < shuffled
    eye = torch.eye(4, dtype=D64)
    expected = -math.log(math.exp(1 / 0.5) / (math.exp(1 / 0.5) + 3))
    assert info_nce(eye, eye, 0.5).item() == pytest.approx(expected, rel=1e-12)


def test_info_nce_counts_equal_the_expanded_batch():
    # RLMRec-Con sees each repeated node once with its count: value and gradient must be those of the batch
    g = gen(16)
    a = torch.randn(6, 5, generator=g, dtype=D64, requires_grad=True)
    b = torch.randn(6, 5, generator=g, dtype=D64, requires_grad=True)
    counts = torch.tensor([1, 3, 1, 2, 5, 1])
    expanded = torch.repeat_interleave(torch.arange(6), counts)
    reference = F.cross_entropy(F.normalize(a[expanded]) @ F.normalize(b[expanded]).t() / 0.2,
                                torch.arange(len(expanded)))  # the expanded batch, written out
    grads = torch.autograd.grad(reference, (a, b))
    value = info_nce(a, b, 0.2, counts)
    torch.testing.assert_close(value, reference, rtol=1e-12, atol=0)
    for got, want in zip(torch.autograd.grad(value, (a, b)), grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="counts"):
        info_nce(a, b, 0.2, counts[:3])


def test_rlmrec_con_head_weight_mask_and_gradient():
    torch.manual_seed(0)
    head = RLMRecConHead(8, 16, kd_weight=0.01, tau=0.2).double()
    cf, llm = rows(n=32)
    mask = torch.arange(32) % 3 != 0
    out = head(cf, llm, mask=mask)["rlmrec_con"]
    expected = 0.01 * info_nce(cf[mask], head.mlp(llm[mask]), 0.2)
    assert out.item() == pytest.approx(expected.item(), rel=1e-12)
    out.backward()
    assert torch.count_nonzero(cf.grad[~mask]) == 0 and cf.grad[mask].norm() > 0
    with pytest.raises(ValueError, match="tau"):
        RLMRecConHead(8, 16, tau=0.0)


def test_rlmrec_gen_head_masks_ratio_with_token():
    torch.manual_seed(0)
    head = RLMRecGenHead(8, 16, recon_weight=0.1, mask_ratio=0.1, tau=0.5).double()
    ego = torch.randn(200, 8, dtype=D64, requires_grad=True)
    masked, index = head.mask_nodes(ego, gen(1))
    assert index.numel() == 20 and index.unique().numel() == 20
    keep = torch.ones(200, dtype=torch.bool)
    keep[index] = False
    assert torch.equal(masked[index], head.mask_token.expand(20, 8))
    assert torch.equal(masked[keep], ego[keep])
    llm = torch.randn(20, 16, dtype=D64)
    out = head(masked[index] * 1.0, llm)["rlmrec_gen"]
    assert out.shape == () and out.item() > 0
    out.backward()
    assert head.mask_token.grad.norm() > 0 and head.decoder[0].weight.grad is not None
    with pytest.raises(ValueError, match="mask_ratio"):
        RLMRecGenHead(8, 16, mask_ratio=0.0)


def test_grad_norms_reports_each_term():
    cf, llm = rows()
    terms = make_head()(cf, llm, generator=gen(1))
    norms = grad_norms(terms, cf)
    assert set(norms) == set(DARec_TERMS)
    assert norms["darec_global"] > 0
    # stop-grad defaults: the local term and the regularisers train the projectors only
    assert norms["darec_local"] == norms["darec_orth"] == norms["darec_unif"] == 0.0
    reaching = grad_norms(make_head(local_stopgrad=False)(cf, llm, generator=gen(1)), cf)
    assert reaching["darec_local"] > 0


def test_crossview_nce_is_info_nce_of_each_nodes_two_views():
    """The study mode ``crossview_nce`` pairs node i's CF view with node i's LLM view, as RLMRec-Con's InfoNCE does:
    same value as ``info_nce`` on the same rows, low when every node's two views agree, high when shuffled."""
    g = gen(3)
    zc = torch.randn(12, 6, generator=g, dtype=D64)
    zl = zc + 0.05 * torch.randn(12, 6, generator=g, dtype=D64)
    value = global_structure_loss(zc, zl, "crossview_nce", tau=0.2)
    assert torch.allclose(value, info_nce(zc, zl, 0.2))
    shuffled = global_structure_loss(zc, zl[torch.randperm(12, generator=g)], "crossview_nce", tau=0.2)
    assert float(value) < 0.5 < float(shuffled)
    with pytest.raises(ValueError, match="n_first"):
        global_structure_loss(zc, zl, "crossview_nce", tau=0.2, n_first=4)
