from recbole_darec.model.backbones.lightgcn import LightGCNBackbone  # noqa: F401
