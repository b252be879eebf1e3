from recbole_darec.model.backbones.lightgcl import LightGCL  # noqa: F401
