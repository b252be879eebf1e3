"""The blocked all-node InfoNCE denominator against plain autograd (float64), across block boundaries."""
import pytest
import torch

from recbole_darec.model import contrast


@pytest.fixture(params=[7, 1 << 18], ids=["many-blocks", "one-block"])
def block_elements(request, monkeypatch):
    monkeypatch.setitem(contrast._BLOCK_ELEMENTS, "cpu", request.param)
    return request.param


def test_weighted_logsumexp_value_and_gradients(block_elements):
    torch.manual_seed(0)
    a = torch.randn(23, 5, dtype=torch.float64, requires_grad=True)
    c = torch.randn(31, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(23, dtype=torch.float64) * 3
    w[4] = 0.0
    expected = (w * torch.logsumexp(a @ c.t(), 1)).sum()
    got = contrast.weighted_logsumexp(a, c, w)
    torch.testing.assert_close(got, expected, rtol=1e-13, atol=0)
    # an upstream gradient other than 1 scales both stored gradients
    for want, have in zip(torch.autograd.grad(2.5 * expected, (a, c)), torch.autograd.grad(2.5 * got, (a, c))):
        torch.testing.assert_close(have, want, rtol=1e-12, atol=1e-13)


def test_weighted_logsumexp_large_logits_stay_finite():
    a, c = torch.full((3, 2), 300.0), torch.eye(2) * 10
    value = contrast.weighted_logsumexp(a, c, torch.ones(3))
    assert torch.isfinite(value) and abs(float(value) - 3 * (3000 + torch.log(torch.tensor(2.0)))) < 1e-2


def test_weighted_logsumexp_without_grad_stores_nothing():
    a, c = torch.randn(4, 3), torch.randn(6, 3, requires_grad=True)
    with torch.no_grad():
        value = contrast.weighted_logsumexp(a, c, torch.ones(4))
    assert not value.requires_grad
    value = contrast.weighted_logsumexp(a, c, torch.ones(4))  # only candidates need a gradient
    (grad_c,) = torch.autograd.grad(value, c)
    assert grad_c.shape == c.shape


@pytest.mark.parametrize("shape_a, shape_c, shape_w", [((4, 3), (6, 2), (4,)), ((4, 3), (6, 3), (3,)),
                                                        ((4,), (6, 3), (4,))])
def test_weighted_logsumexp_refuses_mismatched_shapes(shape_a, shape_c, shape_w):
    with pytest.raises(ValueError, match="anchors|weights"):
        contrast.weighted_logsumexp(torch.randn(*shape_a), torch.randn(*shape_c), torch.ones(*shape_w))


@pytest.mark.parametrize("negatives", ["all", "batch"])
def test_all_node_info_nce_gradients_match_every_repeat_scored(block_elements, negatives):
    """Scoring each distinct node once, weighted by its count, has the value and gradients of scoring every
    repeat of ``index`` (the plain formula, duplicates and all)."""
    torch.manual_seed(1)
    anchor = torch.randn(40, 6, dtype=torch.float64, requires_grad=True)
    candidates = torch.randn(40, 6, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 40, (70,))
    a = torch.nn.functional.normalize(anchor[index], dim=1) / 0.2
    if negatives == "all":
        c, positive_of = torch.nn.functional.normalize(candidates, dim=1), index
    else:
        nodes, positive_of = torch.unique(index, return_inverse=True)
        c = torch.nn.functional.normalize(candidates[nodes], dim=1)
    expected = (torch.logsumexp(a @ c.t(), 1) - (a * c[positive_of]).sum(1)).mean()
    got = contrast.all_node_info_nce(anchor, candidates, index, 0.2, negatives=negatives)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    for want, have in zip(torch.autograd.grad(expected, (anchor, candidates)),
                          torch.autograd.grad(got, (anchor, candidates))):
        torch.testing.assert_close(have, want, rtol=1e-10, atol=1e-14)


def test_weighted_logsumexp_sums_half_precision_in_float32():
    torch.manual_seed(2)
    a = torch.randn(50, 8).to(torch.bfloat16).requires_grad_()
    c = torch.randn(300, 8).to(torch.bfloat16).requires_grad_()
    w = torch.ones(50)
    value = contrast.weighted_logsumexp(a, c, w)
    assert value.dtype == torch.float32
    expected = (w * torch.logsumexp(a.float() @ c.float().t(), 1)).sum()
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=0)
    grad_a, grad_c = torch.autograd.grad(value, (a, c))
    assert grad_a.dtype == grad_c.dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(contrast.weighted_logsumexp(a, c, w), expected, rtol=1e-5, atol=0)
