"""The comparison's one error type, apart so that the checks and the variants file both raise it."""


class CompareError(ValueError):
    """A model, dataset or setting that makes the comparison impossible; raised before any run starts."""
