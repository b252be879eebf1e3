"""The one lock on a dataset folder's generated files (semantic embeddings, manifest, cache).

Every process that writes or reads them -- the semantic CLI, a training run's data preparation and dataset load,
Ray Tune trials, comparison workers -- takes this lock, so two runs with different seeds never see each other's
half of a rebuild. It is an advisory ``flock`` on the dataset *folder itself*: no lock file is created, so none
can be left behind, whatever way the process ends (the kernel drops the lock when the process dies), and a
read-only folder can be locked too. Re-entrant within a thread (a run's build holds it while the semantic
builder inside takes it again); another thread or process waits. Without ``fcntl`` (not POSIX), or where the
file system refuses ``flock`` on a directory, no lock is taken and a warning says so once.
"""
import contextlib
import logging
import os
import threading

_held = {}  # (real path, thread id) -> depth, for re-entry by the thread that holds the lock
_warned = set()


@contextlib.contextmanager
def folder_lock(folder):
    """Hold the exclusive lock of ``folder`` (an existing directory) for the ``with`` block."""
    key = (os.path.realpath(folder), threading.get_ident())
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(key[0], os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:  # e.g. some network file systems
            if key[0] not in _warned:
                _warned.add(key[0])
                logging.getLogger().warning(f"dataset folder {key[0]} cannot be locked ({err}); concurrent runs "
                                            "on it may see each other's generated files")
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # closing the descriptor releases the lock
