"""LLM-side representations: profile texts -> local transformers encoder -> RecBole atomic embedding files.

Public API:
    ensure_semantic_embeddings(config, encoder=None, force=False) -- build/check ``<ds>.useremb``/``<ds>.itememb``
        and set the Config keys that make RecBole load them (call from a model's ``prepare_data``).
    register_semantic_buffers(model, dataset, fp16=False, check_split=True) -- frozen buffers
        ``user_semantic``/``item_semantic`` + ``*_mask`` on a model, rows = RecBole internal ids.
    generate_profile_texts(config, sides) -- the profile texts alone (user texts: training interactions only).
    TextEncoder -- the batched mean-pooling encoder (``semantic_*`` defaults: properties/model/SemanticMixin.yaml).
    SemanticSettings.from_config(config) -- a run's ``semantic_*`` settings, defaults filled in, resolved once.
"""
from recbole_darec.semantic.build import ensure_semantic_embeddings, generate_profile_texts
from recbole_darec.semantic.encoder import TextEncoder, default_encoder_path
from recbole_darec.semantic.loading import apply_semantic_config, register_semantic_buffers
from recbole_darec.semantic.settings import SemanticSettings

__all__ = ["ensure_semantic_embeddings", "register_semantic_buffers", "apply_semantic_config", "TextEncoder",
           "default_encoder_path", "generate_profile_texts", "SemanticSettings"]
