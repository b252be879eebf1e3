from recbole_darec.model.backbones.sgl import SGLBackbone  # noqa: F401
