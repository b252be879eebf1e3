"""What every plugin model class shares, backbone or head mixin: one way to read a config key, one per-epoch hook."""
from recbole_darec.paths import PROPERTIES_DIR


class ModelCommon:
    """Mixed into the graph backbones, the zoo adapter and the head mixins, so a composed model has one of each."""

    @classmethod
    def param(cls, config, key, optional=False):
        """``config[key]``: the one way model code reads a key. Its default is in ``properties/model/<Class>.yaml``
        of the class that reads it (the plugin Config loads the YAML of every class of a model). A key without a
        value is refused in one line naming it and those files, unless ``optional`` (where ``~`` means something,
        such as "the factory's own default")."""
        value = config[key] if key in config else None
        if value is None and not optional:
            raise KeyError(f"{cls.__name__}: config key '{key}' has no value; its default belongs in "
                           f"{_yaml_files(cls)}")
        return value

    def start_training_epoch(self):
        """The one per-epoch hook: the plugin's trainer calls it before every training epoch (``train()`` is also
        called by evaluation and by code outside a run, so it marks no epoch). Override it and call ``super()``."""


def _yaml_files(cls):
    """The YAML files of ``cls``'s classes (where a key they read has its default), or the one it would have."""
    names = [c.__name__ for c in cls.__mro__ if (PROPERTIES_DIR / "model" / f"{c.__name__}.yaml").is_file()]
    return " or ".join(f"properties/model/{name}.yaml" for name in names or [cls.__name__])
