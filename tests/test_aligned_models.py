"""Backbone + head compositions (DaRec*, RLMRec*, generic DaRec on a RecBole zoo model) trained for real on
ml-100k with MiniLM profile embeddings (built once by the semantic module and cached next to the data)."""
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.common import FirstBatches
from recbole_darec import Config, run_recbole_darec
from recbole_darec.single_run import build

ALIGNED = ["DaRecLightGCN", "DaRecSGL", "DaRecLightGCL", "RLMRecConLightGCN", "RLMRecConSGL",
           "RLMRecGenLightGCN", "RLMRecGenSGL"]


def built(model, quick_config, dataset="ml-100k", **overrides):
    config = Config(model=model, dataset=dataset, config_dict={**quick_config, **overrides})
    return build(config)


@pytest.mark.parametrize("model", ALIGNED)
def test_each_aligned_model_trains_with_finite_named_terms(model, quick_config):
    config = Config(model=model, dataset="ml-100k", config_dict=quick_config)
    _, (train_data, valid_data, test_data), _, trainer = build(config)
    losses = trainer._train_epoch(train_data, 0)
    assert isinstance(losses, tuple) and all(math.isfinite(v) for v in losses)
    line = trainer._generate_train_loss_output(0, 0.0, 1.0, losses)  # the line RecBole's fit() logs
    head_term = "darec_global" if model.startswith("DaRec") else ("rlmrec_con" if "Con" in model else "rlmrec_gen")
    assert head_term in line and "bpr" in line and "train_loss1" not in line
    result = trainer.evaluate(test_data, load_best_model=False)
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in result.values())
    assert result["recall@20"] > 0.02  # far above random (20 of 1682 items ~ 0.012)


def test_terms_are_finite_and_reach_the_right_parameters(quick_config):
    _, (train_data, *_), model, _ = built("DaRecLightGCN", quick_config)
    model.train()
    batch = next(iter(train_data))
    terms = dict(zip(model.loss_names, model.calculate_loss(batch)))
    assert set(terms) == {"bpr", "reg", "darec_global", "darec_local", "darec_orth", "darec_unif"}
    assert all(torch.isfinite(t) for t in terms.values())
    (terms["darec_global"] + terms["darec_local"]).backward()
    assert model.user_embedding.weight.grad.abs().sum() > 0  # structure terms reach E^C of sampled nodes
    assert not model.head.cf_shared[0].weight.requires_grad  # default: the CF shared projector is a fixed isometry
    assert model.head.llm_shared[0].weight.grad.abs().sum() > 0
    assert "head.cf_shared.0.weight" in model.state_dict()  # saved, so a reloaded model projects the same way
    assert model.head.cf_specific[0].weight.grad is None  # specific parts: only orth/unif train them
    assert not model.user_semantic.requires_grad and model.user_semantic.grad is None
    assert "user_semantic" not in model.state_dict()  # frozen LLM tables are not saved in checkpoints


@pytest.mark.parametrize("score_with, read", [("backbone", False), ("shared_specific", True)])
def test_c_sp_is_trained_only_when_the_model_scores_with_it(quick_config, score_with, read):
    _, (train_data, *_), model, _ = built("DaRecLightGCN", quick_config, darec_score_with=score_with)
    assert model.head.cf_specific_read is read and model.head.cf_regularizers_matter is read
    model.train()
    sum(model.calculate_loss(next(iter(train_data)))).backward()
    assert (model.head.cf_specific[0].weight.grad is not None) is read


def test_degree_buffers_are_the_training_degrees(quick_config):
    _, (train_data, *_), model, _ = built("DaRecLightGCN", quick_config, darec_degree_coupling=10.0)
    inter = train_data.dataset.inter_feat
    users, counts = torch.unique(inter[model.USER_ID], return_counts=True)
    assert torch.equal(model.user_degree[users], counts) and int(model.user_degree.sum()) == len(inter)
    assert int(model.item_degree.sum()) == len(inter) and "user_degree" not in model.state_dict()
    model.train()
    terms = dict(zip(model.loss_names, model.calculate_loss(next(iter(train_data)))))
    assert torch.isfinite(terms["darec_global"])


def test_rlmrec_con_term_is_the_batch_infonce_over_every_row(quick_config):
    """The mixin passes each repeated user/item once with its count; the term must equal RLMRec-Con written out
    over the batch's rows, repeats included (users, positives and negatives as three groups)."""
    from recbole_darec.model.alignment import info_nce

    _, (train_data, *_), model, _ = built("RLMRecConLightGCN", quick_config, train_batch_size=256)
    model.train()
    batch = next(iter(train_data))
    user_all, item_all = model.forward()
    assert len(torch.unique(batch[model.USER_ID])) < len(batch)  # the batch does repeat users
    expected = 0
    for field, side, table in ((model.USER_ID, "user", user_all), (model.ITEM_ID, "item", item_all),
                               (model.NEG_ITEM_ID, "item", item_all)):
        ids = batch[field]
        ids = ids[getattr(model, f"{side}_semantic_mask")[ids]]
        mapped = model.head.mlp(getattr(model, f"{side}_semantic")[ids].float())
        expected = expected + model.head.kd_weight * info_nce(table[ids], mapped, model.head.tau)
    got = model.head_loss(batch, user_all, item_all)["rlmrec_con"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("off", [{"darec_lambda": 0.0}, {"darec_text_trust": 0.0}])
def test_lambda_zero_trains_exactly_like_the_backbone(quick_config, off):
    """λ = 0, or no trust in the text (what ``darec_text_trust: auto`` gives text that says nothing): the run is
    the backbone's, to the last digit."""
    config = {**quick_config, "epochs": 2}
    backbone = run_recbole_darec("LightGCNBackbone", "ml-100k", config_dict=config)
    darec = run_recbole_darec("DaRecLightGCN", "ml-100k", config_dict={**config, **off})
    assert darec["test_result"] == backbone["test_result"]
    assert darec["best_valid_result"] == backbone["best_valid_result"]


def test_generic_darec_on_recbole_lightgcn(quick_config):
    """Plug-and-play: the same head on RecBole's own LightGCN, chosen by config, no new model file."""
    _, (train_data, *_), model, _ = built("DaRec", quick_config, backbone="LightGCN")
    assert type(model.backbone).__module__.startswith("recbole.model")
    model.train()
    terms = model.calculate_loss(next(iter(train_data)))
    assert len(terms) == len(model.loss_names) == 5 and all(torch.isfinite(t) for t in terms)
    sum(terms).backward()
    assert model.backbone.user_embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("model", ["DaRecLightGCN", "RLMRecConLightGCN"])
def test_head_interval_runs_the_head_on_every_kth_step_scaled_by_k(model, quick_config):
    _, (train_data, *_), every, _ = built(model, quick_config)
    _, _, third, _ = built(model, quick_config, head_interval=3)
    batch = next(iter(train_data))
    n_head = len(every.head_loss_names)

    def head_terms(m):
        torch.manual_seed(0)  # the head's sampling and K-means draw from the global RNG
        return m.calculate_loss(batch)[-n_head:]

    for m in (every, third):
        m.train()
        m.start_training_epoch()
    reference = head_terms(every)
    assert any(t.requires_grad and t != 0 for t in reference)
    for step in range(7):
        terms = head_terms(third)
        if step % 3 == 0:  # the first step of the epoch, then every third: the head's terms x 3
            assert all(torch.equal(t, 3 * r) for t, r in zip(terms, reference))
        else:  # skipped: zeros without graph
            assert all(t == 0 and not t.requires_grad for t in terms)
    third.start_training_epoch()  # a new epoch starts the schedule again
    assert all(torch.equal(t, 3 * r) for t, r in zip(head_terms(third), reference))


def test_the_per_epoch_hook_reaches_the_backbone_under_a_head(quick_config):
    """DaRecSGL: the plugin trainer's one hook restarts the head's schedule and, through super(), makes SGL draw
    new views at the epoch's first step; evaluating in between (train()/eval()) keeps the epoch's views."""
    _, (train_data, valid_data, _), model, trainer = built("DaRecSGL", quick_config, head_interval=2)
    first = FirstBatches(train_data, 3)
    trainer._train_epoch(first, 0)
    views = model.views
    assert views is not None and model._steps_this_epoch == 3
    trainer._valid_epoch(valid_data)
    model.train()
    assert model.views is views
    trainer._train_epoch(first, 1)
    assert model.views is not None and model.views is not views and model._steps_this_epoch == 3


@pytest.mark.parametrize("key, value", [("darec_k", 1), ("darec_sample_size", 1), ("darec_lambda", -0.1),
                                        ("darec_k", 5000), ("head_interval", 0), ("head_interval", 2.5)])
def test_invalid_head_config_names_the_key(quick_config, key, value):
    with pytest.raises(ValueError, match=key):
        built("DaRecLightGCN", quick_config, **{key: value})


@pytest.mark.needs_data("rlmrec/yelp")
def test_missing_semantic_embeddings_say_what_to_provide(quick_config):
    # yelp ships without LLM embeddings (RLMRec's ada-002 files are download-only): the run must stop, not train.
    with pytest.raises(FileNotFoundError, match="(?s)no LLM-side representations.*convert_rlmrec"):
        built("DaRecLightGCN", quick_config, dataset="yelp")


def test_relative_coupling_measures_the_ranking_gradient_on_omega(quick_config):
    """``darec_structure_grad_scale: relative``: the reference is ||∇ bpr|| on Ω's rows, and the structure terms'
    gradient on those rows of the final embeddings is λ times it."""
    _, (train_data, *_), model, _ = built("DaRecLightGCN", quick_config, darec_structure_grad_scale="relative",
                                          darec_lambda=0.3, darec_degree_decay=0.0, darec_omega_items="positives",
                                          darec_global_mode="crossview")  # Ω of unique rows: one gradient each
    model.train()
    batch = next(iter(train_data))
    user_all, item_all = model.forward()
    bpr, _ = model.backbone_loss(batch, user_all, item_all)
    users, items, _, _ = model.sample_omega(batch)
    _, mask = model.semantic_rows(users, items)
    reference = model.ranking_grad_norm(bpr, user_all, item_all, users, items, mask)
    g_u, g_i = torch.autograd.grad(bpr, (user_all, item_all), retain_graph=True)
    assert reference.item() == pytest.approx(torch.cat([g_u[users], g_i[items]])[mask].norm().item(), rel=1e-6)
    terms = model.head_loss(batch, user_all, item_all)  # uses the ranking loss backbone_loss kept for this step
    g_u, g_i = torch.autograd.grad(terms["darec_global"] + terms["darec_local"], (user_all, item_all))
    assert torch.cat([g_u[users], g_i[items]]).norm().item() == pytest.approx(0.3 * reference.item(), rel=1e-4)
    with pytest.raises(ValueError, match="ranking loss of this step"):  # kept for one step only
        model.head_loss(batch, user_all, item_all)


def test_generic_darec_propagates_once_and_keeps_the_zoo_loss(quick_config, monkeypatch):
    _, (train_data, *_), model, _ = built("DaRec", quick_config, backbone="LightGCN")
    model.train()
    batch = next(iter(train_data))
    calls, real_forward = [], type(model.backbone).forward

    def counting(self, *args, **kwargs):  # counts the real propagations
        calls.append(1)
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model.backbone), "forward", counting)
    terms = model.calculate_loss(batch)
    assert len(calls) == 1 and "forward" not in vars(model.backbone)  # the temporary forward is removed again
    torch.manual_seed(0)
    expected = model.backbone.calculate_loss(batch)
    assert terms[0].item() == pytest.approx(sum(expected).item(), rel=1e-6)


def test_cli_trains_darec_and_logs_every_term(tmp_path):
    """The user's command: each DaRec term appears by name with a finite value in the epoch lines."""
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(repo / "run_recbole_darec.py"), "--model=DaRecLightGCN", "--dataset=ml-100k",
         "--epochs=2", "--embedding_size=32", "--train_batch_size=4096", f"--checkpoint_dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    log = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)  # RecBole colours the console lines
    for epoch in (0, 1):
        line = next(l for l in log.splitlines() if re.search(rf"epoch {epoch} training", l))
        for term in ("bpr", "reg", "darec_global", "darec_local", "darec_orth", "darec_unif"):
            value = re.search(rf"{term}\s*:\s*(-?[\d.]+(?:e-?\d+)?)", line)
            assert value and math.isfinite(float(value.group(1))), (term, line)
