"""DaRec head mixin: adds the disentangled-alignment terms to any backbone's loss.

Reference: Xihong Yang et al. "A Disentangled Alignment Framework for Large Language Model and Recommender
System." ICDE 2025 (arXiv 2408.08231). Formulas: ``alignment/darec_head.py`` and ``alignment/losses.py``; the
study alternatives: ``alignment/study/`` (``study/modes.py``: the value that selects them).

Per step: Ω = the batch's unique users and positive items (at most ``darec_sample_size``), their final CF rows
(the embeddings the backbone scores with) and frozen LLM rows go through :class:`DaRecHead`; rows without a profile
are masked out. Scoring uses the backbone's embeddings (plug-and-play) unless ``darec_score_with: shared_specific``.
"""

import logging

import torch

from recbole_darec.cli_errors import UserError
from recbole_darec.model.alignment import DARec_TERMS, DaRecHead, DaRecStudyModes
from recbole_darec.model.alignment.text_trust import text_agreement, trust_from_agreement
from recbole_darec.model.composed.semantic import SemanticMixin, no_cold_map_message

# DaRecHead parameter -> config key, spelled out so a key can be found by grep; λ and K follow the paper's
# symbols. Defaults: properties/model/DaRecMixin.yaml (tests/test_defaults.py checks the signatures agree).
HEAD_KEYS = {
    "d_proj": "darec_d_proj", "lam": "darec_lambda", "n_clusters": "darec_k", "sample_size": "darec_sample_size",
    "w_global": "darec_w_global", "w_local": "darec_w_local", "w_orth": "darec_w_orth", "w_unif": "darec_w_unif",
    "reg_sample": "darec_reg_sample", "unif_t": "darec_unif_t", "kmeans_iters": "darec_kmeans_iters",
    "degree_decay": "darec_degree_decay",
}
# DaRecStudyModes field -> config key (same YAML: its method, per-node trust and study sections).
STUDY_KEYS = {
    "cf_projector": "darec_cf_projector", "global_mode": "darec_global_mode", "global_pairs": "darec_global_pairs",
    "global_tau": "darec_global_tau", "global_teacher": "darec_global_teacher", "local_mode": "darec_local_mode",
    "local_tau": "darec_local_tau", "kmeans_init": "darec_kmeans_init", "degree_coupling": "darec_degree_coupling",
    "regularizer_stopgrad": "darec_regularizer_stopgrad", "local_stopgrad": "darec_local_stopgrad",
    "structure_grad_scale": "darec_structure_grad_scale", "center_llm": "darec_center_llm",
    "warmup_steps": "darec_warmup_steps",
}
SCORE_MODES = ("backbone", "shared_specific")
# Ω: the batch's users and positives (unique), also its negatives in the items' group, or as the ranking loss uses
# the batch: users, positives and negatives as three groups, each node counted as often as the batch holds it
OMEGA_ITEMS = ("positives", "with_negatives", "batch")


def check_score_with(value):
    if value not in SCORE_MODES:
        raise ValueError(f"config darec_score_with={value!r}: must be one of {SCORE_MODES}")
    return value


def check_omega_items(value, global_mode):
    if value not in OMEGA_ITEMS:
        raise ValueError(f"config darec_omega_items={value!r}: must be one of {OMEGA_ITEMS}")
    if value == "batch" and global_mode != "crossview_nce":
        raise ValueError(f"config darec_omega_items=batch weights Ω's nodes by their use, which only "
                         f"darec_global_mode=crossview_nce reads (got darec_global_mode={global_mode!r})")
    return value


def check_text_trust(value):
    """``auto`` (measured on the training graph) or a fixed share of λ in [0, 1]."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"config darec_text_trust={value!r}: must be auto or a number in [0, 1]")
    return float(value)


class DaRecMixin(SemanticMixin):
    """Composes :class:`DaRecHead` with the backbone it is mixed into (listed after it in the bases)."""

    head_loss_names = DARec_TERMS
    head_class = DaRecHead
    head_keys = HEAD_KEYS
    study_class = DaRecStudyModes
    study_keys = STUDY_KEYS

    @classmethod
    def head_extras(cls, config):
        return {"study": cls.build_with_keys(DaRecStudyModes, config, cls.study_keys)}

    @classmethod
    def check_config(cls, config):
        check_score_with(cls.param(config, "darec_score_with"))
        check_text_trust(cls.param(config, "darec_text_trust"))
        check_omega_items(cls.param(config, "darec_omega_items"), cls.param(config, "darec_global_mode"))
        super().check_config(config)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # parameters
        # defaults: properties/model/DaRecMixin.yaml
        self.score_with = check_score_with(self.param(config, "darec_score_with"))
        self.omega_items = check_omega_items(self.param(config, "darec_omega_items"),
                                             self.param(config, "darec_global_mode"))
        self._ranking_loss = None  # set per step only for structure_grad_scale: relative (see backbone_loss)
        # layers
        self.head = self.build_head(config, self.embedding_size, self.semantic_dim)
        self.head.cf_specific_read = self.score_with == "shared_specific"
        self.text_agreement = None  # the measurement behind an ``auto`` trust (text_trust.TextAgreement)
        self.head.trust = self._text_trust(check_text_trust(self.param(config, "darec_text_trust")), dataset)
        if self.head.needs_degree:  # training degree per user / item (non-persistent: derived from the data)
            inter = dataset.inter_feat
            for name, field, n in (("user_degree", self.USER_ID, self.n_users),
                                   ("item_degree", self.ITEM_ID, self.n_items)):
                self.register_buffer(name, torch.bincount(inter[field].long(), minlength=n), persistent=False)

    def _text_trust(self, setting, dataset):
        """The share of λ this dataset's text earns (``darec_text_trust``; ``auto``: text_trust.py), logged."""
        log = logging.getLogger()
        if setting != "auto":
            log.info(f"DaRec text trust: {setting:g} (darec_text_trust), λ {self.head.lam:g} -> "
                     f"{self.head.lam * setting:g}")
            return setting
        inter = dataset.inter_feat  # the training split: the model is built on it
        self.text_agreement = agreement = text_agreement(self.item_semantic, self.item_semantic_mask,
                                                         inter[self.USER_ID], inter[self.ITEM_ID])
        trust = trust_from_agreement(agreement)
        log.info(f"DaRec text trust: item texts agree with the training graph at AUC {agreement.auc:.4f} "
                 f"(shuffled texts {agreement.null_mean:.4f} ± {agreement.null_std:.4f}, "
                 f"{agreement.triples} triples) -> trust {trust:.2f}, λ {self.head.lam:g} -> "
                 f"{self.head.lam * trust:g}")
        return trust

    def sample_omega(self, interaction):
        """Ω, capped at N̂ (the head's cost is independent of |V|): ``(users, items, group sizes, counts)``, users'
        rows first. ``batch``: the batch's users, positive items and sampled negative items as three groups of unique
        nodes, each counted as often as the batch uses it (the ranking loss's own sample: popular items through the
        positives, the long tail through the uniform negatives); otherwise the unique users and positive items (with
        ``with_negatives`` the negatives join the items), counted once."""
        users, positives = interaction[self.USER_ID], interaction[self.ITEM_ID]
        if self.omega_items == "batch":  # a backbone without sampled negatives has two groups
            drawn = (users, positives) + ((interaction[self.NEG_ITEM_ID],) if self.NEG_ITEM_ID in interaction else ())
            (users, *item_groups), counts = DaRecHead.sample_groups(drawn, self.head.sample_size)
            return (users, torch.cat(item_groups), tuple(len(g) for g in (users, *item_groups)),
                    torch.cat(counts))
        if self.omega_items == "with_negatives":  # uniformly drawn items too, in the items' group
            positives = torch.cat([positives, interaction[self.NEG_ITEM_ID].flatten()])
        users, items = DaRecHead.sample_nodes(users, positives, self.head.sample_size)
        return users, items, (len(users), len(items)), None

    def backbone_loss(self, interaction, user_all, item_all):
        terms = super().backbone_loss(interaction, user_all, item_all)
        if self.head.study.structure_grad_scale == "relative":  # study mode: the head scales to L_rank's gradient
            self._ranking_loss = terms[0]
        return terms

    def head_loss(self, interaction, user_all, item_all):
        if self.head.effective_lambda() == 0.0:  # no trust in the text (or λ = 0): the backbone's step, untouched
            return {name: user_all.new_zeros(()) for name in self.head_loss_names}
        users, items, groups, counts = self.sample_omega(interaction)
        cf_rows = torch.cat([user_all[users], item_all[items]])  # gather first, project only Ω
        llm_rows, mask = self.semantic_rows(users, items)
        reference = None
        if self.head.study.structure_grad_scale == "relative":
            ranking_loss, self._ranking_loss = self._ranking_loss, None
            reference = self.ranking_grad_norm(ranking_loss, user_all, item_all, users, items, mask)
        degree = torch.cat([self.user_degree[users], self.item_degree[items]]) if self.head.needs_degree else None
        return self.head(cf_rows, llm_rows, mask=mask, backbone_grad_norm=reference, degree=degree, groups=groups,
                         counts=counts)

    def ranking_grad_norm(self, rank_loss, user_all, item_all, users, items, mask):
        """||∇ L_rank|| on Ω's rows of the final embeddings (the scale ``structure_grad_scale: relative`` uses).

        One extra backward through the ranking loss's scoring only (gathers and dot products), not through the
        propagation: ``user_all``/``item_all`` are the propagated tensors the loss was computed from.
        """
        if rank_loss is None:
            raise ValueError("darec_structure_grad_scale=relative needs the backbone's ranking loss of this step "
                             "(backbone_loss before head_loss)")
        if not (torch.is_grad_enabled() and rank_loss.requires_grad):
            return rank_loss.new_zeros(())
        grads = torch.autograd.grad(rank_loss, (user_all, item_all), retain_graph=True, allow_unused=True)
        if all(g is None for g in grads):
            raise ValueError(f"darec_structure_grad_scale=relative: the ranking loss of {type(self).__name__} "
                             "does not use forward()'s embeddings; use darec_structure_grad_scale=auto")
        rows = [g[ids] if g is not None else table.new_zeros(len(ids), table.shape[1])
                for g, ids, table in zip(grads, (users, items), (user_all, item_all))]
        return torch.cat(rows)[mask].norm()

    def _eval_embeddings(self):
        user_all, item_all = super()._eval_embeddings()
        if self.score_with == "backbone":
            return user_all, item_all
        # Switch: score with the disentangled representation [C_sh || C_sp].
        join = lambda e: torch.cat([self.head.cf_shared(e), self.head.cf_specific(e)], dim=1)  # noqa: E731
        return join(user_all), join(item_all)

    def cold_llm_centre(self):
        """The mean LLM row of the items with a training interaction and a profile: what a new item's row is
        centred by (training centres Ω's rows by the batch's mean, ``darec_center_llm``)."""
        return self.item_semantic[self.train_item_mask & self.item_semantic_mask].float().mean(0)

    @torch.no_grad()
    def _cold_map(self, llm_rows):
        """A new item's LLM row as the head's LLM side sees it in training (centred, ``llm_shared``), then back into
        the CF space through the inverse of the CF shared projector: exact for the default fixed isometry (its
        transpose when square, the pseudo-inverse otherwise), least squares for a trained ``linear`` one; a trained
        ``mlp`` has no inverse and is refused. Scoring with ``shared_specific`` joins the CF row's two projections,
        as warm items' rows are joined."""
        head, name = self.head, type(self).__name__
        if head.lam * head.trust == 0.0:
            raise UserError(no_cold_map_message(name, ": its head never trained (darec_lambda x text trust = 0)"))
        if head.study.cf_projector == "mlp":
            raise UserError(no_cold_map_message(name, ": its CF shared projector is a trained MLP "
                                                      "(darec_cf_projector=mlp), which has no inverse"))
        llm = llm_rows - self.cold_llm_centre() if head.study.center_llm else llm_rows
        layer = head.cf_shared[0]
        shared = head.llm_shared(llm.to(layer.weight.dtype))
        if layer.bias is not None:
            shared = shared - layer.bias
        # cf_shared(x) = x W^T (+ b): x = (c - b) pinv(W^T), and pinv(W^T) = W for orthonormal rows or columns
        cf = (shared.double() @ torch.linalg.pinv(layer.weight.double().t())).to(shared.dtype)
        if self.score_with == "backbone":
            return cf
        return torch.cat([head.cf_shared(cf), head.cf_specific(cf)], dim=1)

    @torch.no_grad()
    def user_clusters(self):
        """(user shared CF representations, their K-means labels) for the t-SNE "interest clusters" figure."""
        user_all, _ = self.forward()
        users = torch.arange(1, self.n_users, device=user_all.device)  # skip [PAD]
        shared = self.head.cf_shared(user_all[users])
        return shared, self.head.cluster_labels(user_all[users])
