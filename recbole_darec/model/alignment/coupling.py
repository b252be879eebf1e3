"""How much of an alignment loss's gradient reaches the backbone's embeddings (docs/darec_study.md §2).

The structure terms compare directions of ``f(E^C)``: they are invariant to a row's scale, so their raw gradient
on E^C grows like 1/||e|| and propagated rows are tiny (~0.07). These identity-in-forward functions change only
the backward pass of the CF rows that enter the head; projector gradients are untouched.
"""
import torch

__all__ = ["scale_grad", "normalize_grad"]


def scale_grad(x: torch.Tensor, scale) -> torch.Tensor:
    """Identity in the forward pass (bit-exact), gradient multiplied by ``scale`` (float or 0-d tensor)."""
    if isinstance(scale, float) and scale == 1.0:
        return x
    base = x.detach()
    return base + scale * (x - base)


class _NormalizeGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, target_norm):
        ctx.save_for_backward(target_norm)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (target_norm,) = ctx.saved_tensors
        norm = grad.norm()
        # a zero gradient stays zero; otherwise only its direction is kept
        return grad * (target_norm / norm.clamp_min(1e-30)), None


def normalize_grad(x: torch.Tensor, target_norm: torch.Tensor) -> torch.Tensor:
    """Identity in the forward pass; in the backward pass the total gradient arriving at ``x`` (from every use
    of the result) is rescaled to have Frobenius norm ``target_norm`` (a detached 0-d tensor).

    DaRec's ``structure_grad_scale: relative`` passes λ·||∇_{E^C_Ω} L_rank||, so λ is literally the ratio of the
    alignment gradient to the ranking loss's gradient on the sampled rows, at every step of training.
    """
    return _NormalizeGrad.apply(x, target_norm.detach().to(x.dtype))
