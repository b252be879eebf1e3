"""The LLM side's ``semantic_*`` settings of one run, resolved once (defaults filled in from
``properties/model/SemanticMixin.yaml``) and handed down to what builds, checks and loads the tables."""
from dataclasses import dataclass, fields

from recbole_darec.semantic.defaults import with_defaults
from recbole_darec.semantic.encoder import TextEncoder, check_dtype, encoder_identity
from recbole_darec.semantic.text_controls import text_control

PREFIX = "semantic_"


@dataclass(frozen=True)
class SemanticSettings:
    """One field per ``semantic_<field>`` key (comments in SemanticMixin.yaml), plus the run's device."""

    encoder: object
    batch_size: object
    device: object
    max_length: object
    dtype: object
    fp16: object
    pca_dim: object
    pca_whiten: object
    show_progress: object
    user_profile_file: object
    item_profile_file: object
    check_split: object
    text_control: object
    text_control_seed: object
    text_cut_field: object
    text_cut_words: object
    run_device: object = None  # the config's ``device``: where encoding runs unless ``semantic_device`` says

    @classmethod
    def from_config(cls, config):
        """The config's ``semantic_*`` values, else the YAML defaults (a config of a model without the LLM side,
        such as the semantic CLI's BPR, lacks the keys)."""
        values = {key[len(PREFIX):]: value for key, value in with_defaults(config, PREFIX).items()}
        return cls(**values, run_device=config["device"] if "device" in config else None)

    @classmethod
    def keys(cls):
        """The ``semantic_*`` config keys, in the YAML's order."""
        return [PREFIX + f.name for f in fields(cls) if f.name != "run_device"]

    def encode_device(self):
        return self.device or self.run_device

    def check_dtype(self):
        """Refuse a half-precision encoder on a device that cannot run it, before any work."""
        check_dtype(self.dtype, self.encode_device())

    def control(self):
        """The text control (:func:`text_controls.text_control`): a dict for cache keys and manifests, or None."""
        return text_control({PREFIX + name: getattr(self, name) for name in
                             ("text_control", "text_control_seed", "text_cut_field", "text_cut_words")})

    def encoder_identity(self):
        """What cached tables are keyed on (:func:`encoder.encoder_identity`), without loading the encoder."""
        return encoder_identity(self.encoder, self.max_length, self.dtype)

    def text_encoder(self):
        """The encoder these settings name, loaded on :meth:`encode_device`."""
        return TextEncoder(self.encoder, self.encode_device(), self.batch_size, self.max_length, self.dtype)

    def profile_file(self, side):
        """``semantic_<side>_profile_file``: a file of profile texts the user named, or None."""
        return self.user_profile_file if side == "user" else self.item_profile_file
