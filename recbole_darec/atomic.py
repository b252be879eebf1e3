"""All-or-nothing file writes: a temp file in the target's folder, renamed over the target when complete.

A reader (or a run resumed after a kill) sees the old file or the new one, never half of one. The rename stays on
one filesystem because the temp file sits next to the target. Whole dataset folders are swapped the same way by
``recbole_darec.data.atomic_output`` (folders, not files).
"""
import contextlib
import json
import os
import secrets
from pathlib import Path


def _new_temp(path):
    # os.open with 0o666 lets the umask apply, as a plain open() does (mkstemp would make every file 0600)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


@contextlib.contextmanager
def atomic_path(path, mode=None):
    """Yield a temporary path next to ``path``; write it in the block. When the block succeeds the temp file
    replaces ``path``; when it raises, the temp file is removed and ``path`` is left as it was.

    Args:
        path (str | Path): the target file.
        mode (int | None): permission bits for the new file; ``None`` gives what a plain ``open()`` would.
    """
    path = Path(path)
    tmp = _new_temp(path)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text, mode=None):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path, mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path, obj, mode=None, **dumps_kwargs):
    """Write ``json.dumps(obj, **dumps_kwargs)`` to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, **dumps_kwargs), mode)
