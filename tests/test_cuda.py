"""Device placement on CUDA: every registered model built on ml-100k with ``use_gpu: True`` holds all of its tensors on
the GPU, trains a few steps through the real trainer and validates there. Skipped (with the reason) where
``torch.cuda.is_available()`` is False; ``pytest -m cuda`` selects this file (benchmarks/gpu_suite.sh runs it).

Also pins how the device is chosen today (RecBole 1.2.1's Config): CUDA when ``gpu_id`` is non-empty (default '0')
and ``torch.cuda.is_available()``, else the CPU. ``use_gpu`` is not consulted, so ``use_gpu: True`` on a machine
without CUDA trains on the CPU without an error or a warning, and ``--gpu_id=`` is the switch that forces the CPU.
"""
import math

import pytest
import torch

from benchmarks.common import FirstBatches
from recbole_darec.config import isolated_config
from recbole_darec.model import plugin_model_names
from recbole_darec.single_run import build

pytestmark = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: torch.cuda.is_available() is False (CPU-only torch or no GPU)")

EXTRA = {"DaRec": {"backbone": "LightGCN"}}  # the generic DaRec composes a RecBole zoo model named by `backbone`
MODELS = plugin_model_names()  # the registry: every model the plugin defines, so a new one is covered too
STEPS = 3


def _tensors_in(name, value, depth=0):
    if isinstance(value, torch.Tensor):
        yield name, value
    elif depth > 3:
        return
    elif isinstance(value, (list, tuple)):  # SGL's views, LightGCL's layers, namedtuples of head results
        for i, item in enumerate(value):
            yield from _tensors_in(f"{name}[{i}]", item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors_in(f"{name}[{key!r}]", item, depth + 1)
    elif type(value).__module__.startswith("recbole_darec") and not isinstance(value, torch.nn.Module) \
            and hasattr(value, "__dict__"):  # e.g. graph.SymmetricAdjacency (its CSR matrix)
        for key, item in vars(value).items():
            yield from _tensors_in(f"{name}.{key}", item, depth + 1)


def held_tensors(model):
    """{name: tensor} of everything the model holds: parameters, buffers and tensors kept as plain attributes
    (normalised graphs, edge lists, SVD factors, evaluation caches, the head's last results)."""
    found = dict(model.named_parameters())
    found.update(model.named_buffers())
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr not in ("_parameters", "_buffers", "_modules"):
                found.update(_tensors_in(f"{prefix}.{attr}" if prefix else attr, value))
    return found


def off_device(model, device_type):
    return sorted(f"{name} ({t.device})" for name, t in held_tensors(model).items() if t.device.type != device_type)


def recording(fn, seen):
    """Wrap a model method so the device of every tensor it returns is recorded."""
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        seen.extend(t.device.type for t in (out if isinstance(out, tuple) else (out,)))
        return out
    return wrapper


def quick(quick_config, **overrides):
    return {**quick_config, **overrides}


@needs_cuda
@pytest.mark.parametrize("name", MODELS)
def test_model_lives_trains_and_validates_on_cuda(name, quick_config):
    config = isolated_config(name, "ml-100k", config_dict=quick(quick_config, use_gpu=True, gpu_id="0",
                                                                **EXTRA.get(name, {})))
    assert config["device"].type == "cuda"
    _, (train_data, valid_data, _), model, trainer = build(config)
    assert trainer.device.type == "cuda"
    assert held_tensors(model) and off_device(model, "cuda") == []

    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    loss_devices, score_devices = [], []
    model.calculate_loss = recording(model.calculate_loss, loss_devices)
    losses = trainer._train_epoch(FirstBatches(train_data, STEPS), 0)
    losses = losses if isinstance(losses, tuple) else (losses,)
    assert all(math.isfinite(v) for v in losses), losses
    assert loss_devices and set(loss_devices) == {"cuda"}
    stepped = {n: p for n, p in model.named_parameters()
               if n in before and p.grad is not None and p.grad.abs().sum() > 0}
    assert stepped, "no parameter received a gradient"
    assert [n for n, p in stepped.items() if torch.equal(p.detach(), before[n])] == []  # all of them moved
    assert off_device(model, "cuda") == []  # views, caches and head state made during the steps too

    model.full_sort_predict = recording(model.full_sort_predict, score_devices)
    result = trainer.evaluate(valid_data, load_best_model=False)
    assert result and all(math.isfinite(v) for v in result.values())
    assert score_devices and set(score_devices) == {"cuda"}
    assert off_device(model, "cuda") == []


@needs_cuda
def test_gpu_id_not_use_gpu_chooses_the_device(quick_config):
    """RecBole ignores ``use_gpu`` for placement: ``use_gpu: False`` still runs on the GPU; ``gpu_id: ''`` (the
    documented ``--gpu_id=``) is what keeps a run on the CPU."""
    assert isolated_config("LightGCNBackbone", "ml-100k", config_dict=quick(quick_config, use_gpu=False))[
        "device"].type == "cuda"
    assert isolated_config("LightGCNBackbone", "ml-100k", config_dict=quick(quick_config, gpu_id=""))[
        "device"].type == "cpu"


def test_use_gpu_without_cuda_trains_on_the_cpu_silently(monkeypatch, quick_config):
    """A machine without CUDA (simulated on a GPU box): ``use_gpu: True`` is accepted and the run falls back to the
    CPU with no error. Pinned so that changing this (e.g. to fail loudly) is a deliberate decision."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = isolated_config("LightGCNBackbone", "ml-100k", config_dict=quick(quick_config, use_gpu=True,
                                                                                gpu_id="0"))
    assert config["device"] == torch.device("cpu") and config["use_gpu"] is True
    _, (train_data, *_), model, trainer = build(config)
    losses = trainer._train_epoch(FirstBatches(train_data, 2), 0)
    assert all(math.isfinite(v) for v in losses)
    assert off_device(model, "cpu") == []


@needs_cuda
def test_kmeans_without_host_waits_on_cuda_matches_the_cpu():
    """K-means's path without host waits (``sync_free=True``), on CUDA, from the same warm start (no random draws,
    so no generator device question) finds the CPU's clusters, centres equal up to the GPU's atomic sums; its
    k-means++ seeding on the device runs and is checked once."""
    from recbole_darec.model.alignment import kmeans

    g = torch.Generator().manual_seed(0)
    # four tight clusters per set (1,024 points each), so no point sits near a boundary where float sums could
    # tip it; the warm start has one point of three clusters and a far centre, which empties at once
    centres = torch.nn.functional.normalize(torch.randn(2, 4, 32, generator=g), dim=2)
    x = centres.repeat_interleave(1024, dim=1) + 0.02 * torch.randn(2, 4096, 32, generator=g)
    init = torch.cat([x[:, [0, 1024, 2048]], torch.full((2, 1, 32), 50.0)], dim=1)
    cpu = kmeans(x, 4, iters=10, init=init)
    gpu = kmeans(x.cuda(), 4, iters=10, init=init.cuda(), sync_free=True)
    drawn = kmeans(x.cuda(), 4, iters=10, sync_free=True)  # k-means++ seeding on the device
    assert gpu[0].is_cuda and torch.equal(gpu[0].cpu(), cpu[0])
    assert torch.allclose(gpu[1].cpu(), cpu[1], atol=1e-5)
    assert drawn[0].shape == (2, 4096) and torch.isfinite(drawn[1]).all()
    assert all(torch.bincount(labels, minlength=4).min() > 0 for labels in cpu[0])
