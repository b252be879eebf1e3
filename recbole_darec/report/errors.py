"""The comparison's one error type, apart so that the checks and the variants file both raise it."""
from recbole_darec.cli_errors import UserError


class CompareError(UserError):
    """A model, dataset or setting that makes the comparison impossible; raised before any run starts."""
