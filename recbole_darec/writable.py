"""A folder a command will write into (or create) is checked before the work starts, so that a read-only place
or a file in the way is one line naming it, not a traceback minutes later."""
import os
from pathlib import Path

from recbole_darec.cli_errors import UserError


def check_writable(folder, what, hint="choose another place", error=UserError):
    """Raise ``error`` naming ``what`` and ``folder`` (and saying ``hint``) unless ``folder`` is, or can be created
    as, a writable folder.

    A folder that does not exist yet is judged by its nearest existing ancestor (where it would be created).
    """
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = "" if existing == folder else f" ({existing}, where it would be created)"
    if not existing.is_dir():
        raise error(f"{what} {folder} cannot be created: {existing} is a file, not a folder; {hint}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"{what} {folder} is not writable{where}; {hint}")
