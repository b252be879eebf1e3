"""Small float64 inputs shared by the DaRec head tests (imported by test_alignment_losses / test_darec_head_modes)."""
import torch

import dataclasses

from recbole_darec.model.alignment import DaRecHead, DaRecStudyModes

D64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


STUDY_FIELDS = {field.name for field in dataclasses.fields(DaRecStudyModes)}


def head_args(**kw):
    """DaRecHead keyword arguments from one flat dict: study-mode fields go into ``study=DaRecStudyModes(...)``."""
    study = {k: kw.pop(k) for k in list(kw) if k in STUDY_FIELDS}
    return dict(kw, study=DaRecStudyModes(**study)) if study else kw


def make_head(**kw):
    """A float64 head with d=8, d_L=16, K=3 (seeded initialisation); keyword arguments (head parameters or study
    modes) override. ``global_pairs='all'`` unless given: the fixtures' rows carry no user/item split (``n_users``)."""
    torch.manual_seed(0)
    args = dict(d_cf=8, d_llm=16, n_clusters=3, sample_size=256, global_pairs="all")
    args.update(kw)
    return DaRecHead(**head_args(**args)).double()


def rows(n=120, seed=0):
    """CF rows of propagated-embedding scale (~0.07, with gradient) and anisotropic LLM rows (common mean)."""
    g = gen(seed)
    cf = (0.07 * torch.randn(n, 8, generator=g, dtype=D64)).requires_grad_(True)
    llm = torch.randn(n, 16, generator=g, dtype=D64) + 1.0
    return cf, llm
