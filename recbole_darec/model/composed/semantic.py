"""What every LLM-aligned model shares: the frozen semantic tables and the composed training step.

A model is ``class DaRecLightGCN(DaRecMixin, LightGCNBackbone)``. The head mixins (``darec.py``, ``rlmrec.py``)
build on :class:`SemanticMixin`, which works with any backbone exposing ``forward() -> (user_all, item_all)``,
``backbone_loss(interaction, user_all, item_all)`` (a tuple of terms, the ranking loss first), ``loss_names`` and
``clear_cache()``; a head mixin implements ``head_loss(interaction, user_all, item_all)`` -> dict of terms;
``zoo.py`` adapts RecBole's own models to that interface.
"""
import logging

import torch

from recbole_darec.cli_errors import UserError
from recbole_darec.model.alignment import grad_norms
from recbole_darec.model.common import ModelCommon
from recbole_darec.model.composed import cold_scale
from recbole_darec.semantic import ensure_semantic_embeddings, register_semantic_buffers
from recbole_darec.semantic.settings import SemanticSettings
from recbole_darec.semantic.whiten import PCA, pca_apply, pca_fit, reduce_table


def no_cold_map_message(model_name, why=""):
    """The one line for a model that cannot place an item it was not trained on."""
    return f"{model_name} cannot score items it was not trained on: it has no map from text to its CF space{why}"


def check_head_interval(value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"invalid config head_interval={value!r}: must be an int >= 1")
    return value


class SemanticMixin(ModelCommon):
    """Loads the frozen LLM-side tables (``user_semantic``/``item_semantic`` + masks) before the backbone runs.

    A head mixin sets ``head_class`` and ``head_keys`` (head parameter -> config key; the defaults are in the
    mixin's ``properties/model/<Mixin>.yaml``).
    """

    @classmethod
    def prepare_data(cls, config):
        """Build (or check) the dataset's semantic embedding files and tell RecBole to load them."""
        try:
            ensure_semantic_embeddings(config)
        except ValueError as err:  # invalid input files, named in the message (a missing one: FileNotFoundError)
            if isinstance(err, UserError):
                raise
            raise UserError(str(err)) from err

    @classmethod
    def build_head(cls, config, d_cf, d_llm):
        """``head_class`` from the config's ``head_keys`` (plus :meth:`head_extras`); a ValueError names the key."""
        extras = cls.head_extras(config)
        factory = lambda **kw: cls.head_class(d_cf=d_cf, d_llm=d_llm, **extras, **kw)  # noqa: E731
        return cls.build_with_keys(factory, config, cls.head_keys)

    @classmethod
    def build_with_keys(cls, factory, config, key_of_param):
        """Call ``factory(**kwargs)`` with the config keys that are set (others keep the factory's defaults);
        a ValueError from the factory is re-raised naming the offending config key.

        The head is initialised on a forked RNG, so adding a head does not shift the random stream the backbone
        sees afterwards (with λ = 0 a composed model trains exactly like its backbone)."""
        values = {param: cls.param(config, key, optional=True) for param, key in key_of_param.items()}
        kwargs = {param: value for param, value in values.items() if value is not None}
        try:
            with torch.random.fork_rng(devices=[]):
                return factory(**kwargs)
        except ValueError as err:
            named = [f"{key}={kwargs.get(param)!r}" for param, key in key_of_param.items()
                     if str(err).startswith(param)]
            raise ValueError(f"invalid config {', '.join(named) or ''}: {err}") from None

    @classmethod
    def head_extras(cls, config):
        """Head arguments that are not one config key each (DaRec: its study modes)."""
        return {}

    @classmethod
    def check_config(cls, config):
        """The head's and the schedule's settings, refused before any data is loaded: the head is built on the
        meta device (no memory, no random draw), with a stand-in LLM width (the tables' is known only later)."""
        check_head_interval(cls.param(config, "head_interval"))
        with torch.device("meta"):
            cls.build_head(config, cls.param(config, "embedding_size"), 8)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        settings = SemanticSettings.from_config(config)  # defaults: properties/model/SemanticMixin.yaml
        self.semantic_dim = register_semantic_buffers(self, dataset, fp16=bool(settings.fp16),
                                                      check_split=bool(settings.check_split))
        self.semantic_encoder_dim = self.semantic_dim  # the encoder's width, before any reduction
        # the reduction of the tables (mean, basis), kept to reduce rows of new items alike; None: tables as loaded
        self.register_buffer("semantic_pca_mean", None, persistent=False)
        self.register_buffer("semantic_pca_basis", None, persistent=False)
        # items with a training interaction: the warm items whose scale new items are put on (recommend.py)
        trained = torch.zeros(self.n_items, dtype=torch.bool)
        trained[torch.as_tensor(dataset.inter_feat[self.ITEM_ID], dtype=torch.long)] = True
        self.register_buffer("train_item_mask", trained.to(self.item_semantic.device), persistent=False)
        # the training pairs, for the ``affine`` cold scale's fit (cold_scale.py)
        for name, field in (("train_pair_users", self.USER_ID), ("train_pair_items", self.ITEM_ID)):
            pairs = torch.as_tensor(dataset.inter_feat[field], dtype=torch.long)
            self.register_buffer(name, pairs.to(self.item_semantic.device), persistent=False)
        self.cold_scale_rule = cold_scale.check_cold_scale(self.param(config, "cold_scale"))  # overall.yaml
        if settings.pca_dim is not None:
            self._reduce_semantic_tables(settings.pca_dim, bool(settings.pca_whiten))
        self._grad_share_pending = bool(self.param(config, "log_grad_share"))  # every head, not only DaRec
        self.head_interval = check_head_interval(self.param(config, "head_interval"))
        self._steps_this_epoch = 0

    def _reduce_semantic_tables(self, dim, whiten):
        """Replace the LLM tables by their top-``dim`` principal components (computed once, at build time);
        tables at most ``dim`` wide are used as they are. ``dim`` is a cap: with fewer profile rows than that, the
        n - 1 directions their centred rows span are kept (nothing is lost)."""
        width = self.semantic_dim
        if isinstance(dim, int) and not isinstance(dim, bool):
            if width <= dim:
                logging.getLogger().info(f"semantic: {width}-d tables used as they are (semantic_pca_dim={dim})")
                return
            rows = int(self.user_semantic_mask.sum() + self.item_semantic_mask.sum())
            if dim >= 1 and rows >= 2:  # out-of-range values are left to pca_tables to refuse
                dim = min(dim, rows - 1)
        try:
            pca = pca_fit(self.user_semantic, self.item_semantic, self.user_semantic_mask, self.item_semantic_mask,
                          dim, whiten=whiten)
        except ValueError as err:
            raise ValueError(f"invalid config semantic_pca_dim={dim!r}: {err}") from None
        # still non-persistent buffers
        self.user_semantic = reduce_table(self.user_semantic, self.user_semantic_mask, pca)
        self.item_semantic = reduce_table(self.item_semantic, self.item_semantic_mask, pca)
        self.semantic_pca_mean, self.semantic_pca_basis, self.semantic_dim = pca.mean, pca.basis, dim
        logging.getLogger().info(f"semantic: PCA {width} -> {dim} dims ({'whitened, ' if whiten else ''}"
                                 f"{100 * pca.explained:.1f}% of the profile rows' variance)")

    def semantic_rows_of(self, encoded):
        """Rows of the encoder (n, d_encoder) as the model's LLM tables hold them: cast to the tables' dtype
        (``semantic_fp16``), reduced like them (``semantic_pca_dim``), returned in float32 as
        :meth:`semantic_rows` returns table rows."""
        encoded = torch.as_tensor(encoded).to(self.item_semantic.device)
        if encoded.dim() != 2 or encoded.shape[1] != self.semantic_encoder_dim:
            raise ValueError(f"encoded rows must have shape (n, {self.semantic_encoder_dim}), "
                             f"got {tuple(encoded.shape)}")
        rows = encoded.to(self.item_semantic.dtype)  # the table was cast before its reduction too
        if self.semantic_pca_basis is not None:
            pca = PCA(self.semantic_pca_mean, self.semantic_pca_basis, None)
            rows = pca_apply(rows, pca).to(self.item_semantic.dtype)
        return rows.float()

    @torch.no_grad()
    def cold_item_embeddings(self, encoded):
        """Scoring-space rows (n, d) for items the model was not trained on, from their encoded text (n, d_encoder),
        e.g. ``TextEncoder.encode`` of their profile texts: the head's map (:meth:`_cold_map`) made unit length,
        times the median L2 norm of the warm items' rows (items with a training interaction). Their scores on the
        configured scale: :meth:`cold_scores`.

        Raises:
            UserError: the model has no such map (RLMRec-Gen), or its map was never trained.
        """
        unit = self.cold_directions(self.semantic_rows_of(encoded))
        _, item_all = self._eval_embeddings()
        length, _ = cold_scale.median_norm(item_all, self.train_item_mask)
        return unit * length

    @torch.no_grad()
    def cold_directions(self, llm_rows):
        """Unit rows in the scoring space for LLM rows as the tables hold them (zero rows stay zero)."""
        _, item_all = self._eval_embeddings()
        return torch.nn.functional.normalize(self._cold_map(llm_rows).to(item_all.dtype), dim=1)

    @torch.no_grad()
    def cold_scale_fit(self):
        """``(a, b)``: a new item's score is ``a * <user row, unit mapped row> + b`` (``cold_scale``: cold_scale.py)."""
        user_all, item_all = self._eval_embeddings()
        if self.cold_scale_rule == "median_norm":
            return cold_scale.median_norm(item_all, self.train_item_mask)
        unit = self.cold_directions(self.item_semantic.float())
        warm = self.train_item_mask & self.item_semantic_mask
        return cold_scale.affine(user_all, item_all, unit, warm, self.train_pair_users, self.train_pair_items)

    @torch.no_grad()
    def cold_scorer(self, unit_rows):
        """``f(user rows) -> (n users, n new items)`` scores on the warm items' scale for the new items' unit rows
        (:meth:`cold_directions`); the scale is fitted once here, not per batch of users."""
        slope, shift = self.cold_scale_fit()
        return lambda user_rows: slope * (user_rows @ unit_rows.t()) + shift

    @torch.no_grad()
    def cold_scores(self, user_rows, cold_rows):
        """(n users, n new items) scores on the warm items' scale; ``cold_rows``: the new items' scoring-space rows
        (:meth:`cold_item_embeddings`, or :meth:`cold_directions`: only their direction counts)."""
        return self.cold_scorer(torch.nn.functional.normalize(cold_rows.to(user_rows.dtype), dim=1))(user_rows)

    def _cold_map(self, llm_rows):
        """LLM rows (as the tables hold them) -> rows in the space the model scores items in. A head with such a
        map overrides this."""
        raise UserError(no_cold_map_message(type(self).__name__))

    def semantic_rows(self, users, items):
        """LLM rows and has-profile mask for the given users then items (one matrix, users first)."""
        llm = torch.cat([self.user_semantic[users], self.item_semantic[items]]).float()
        mask = torch.cat([self.user_semantic_mask[users], self.item_semantic_mask[items]])
        return llm, mask

    def training_embeddings(self, interaction):
        """The (user_all, item_all) one training step uses for both the backbone loss and the head."""
        return self.forward()

    def calculate_loss(self, interaction):
        self.clear_cache()
        user_all, item_all = self.training_embeddings(interaction)
        terms = tuple(self.backbone_loss(interaction, user_all, item_all))
        head_terms = self._scheduled_head_loss(interaction, user_all, item_all)
        self._log_grad_share_once(terms, head_terms)
        return terms + tuple(head_terms.values())

    def start_training_epoch(self):
        """Restart ``head_interval``'s schedule (the plugin's trainer calls this before every training epoch), so a
        run resumed at an epoch boundary takes its head steps where an uninterrupted run takes them."""
        super().start_training_epoch()  # the backbone's per-epoch work (SGL redraws its views)
        self._steps_this_epoch = 0

    def _scheduled_head_loss(self, interaction, user_all, item_all):
        """The head's terms on the first step of an epoch and every ``head_interval``-th step after it, multiplied
        by ``head_interval`` (an epoch's alignment gradient keeps its size at 1/head_interval of the head's cost);
        zeros without graph on the other steps."""
        if self.head_interval == 1 or not self.training:
            return self.head_loss(interaction, user_all, item_all)
        due = self._steps_this_epoch % self.head_interval == 0
        self._steps_this_epoch += 1
        if not due:
            return {name: user_all.new_zeros(()) for name in self.head_loss_names}
        return {name: value * self.head_interval
                for name, value in self.head_loss(interaction, user_all, item_all).items()}

    @property
    def loss_names(self):
        return tuple(self.backbone_loss_names) + self.head_loss_names

    @property
    def backbone_loss_names(self):
        return super().loss_names

    def _log_grad_share_once(self, terms, head_terms):
        """With ``log_grad_share: True``, log each term's gradient norm on the embedding tables at the first step."""
        if not self._grad_share_pending or not self.training:
            return
        self._grad_share_pending = False
        tables = [p for n, p in self.named_parameters() if n.endswith("embedding.weight")]
        norms = grad_norms(dict(zip(self.backbone_loss_names, terms), **head_terms), tables)
        base = norms.get(self.backbone_loss_names[0]) or float("nan")
        shares = ", ".join(f"{k}: {v:.3g} ({v / base:.3g}x)" for k, v in norms.items())
        logging.getLogger().info(f"gradient norm on embedding tables at step 1 (ratio to {self.backbone_loss_names[0]}): {shares}")
