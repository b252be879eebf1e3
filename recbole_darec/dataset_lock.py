"""The one lock on a dataset folder's generated files (semantic embeddings, manifest, cache).

Every process that writes or reads them -- the semantic CLI, a training run's data preparation and dataset load,
Ray Tune trials, comparison workers -- takes this lock, so two runs with different seeds never see each other's
half of a rebuild. It is an advisory ``flock`` on the dataset *folder itself*: no lock file is created, so none
can be left behind, whatever way the process ends (the kernel drops the lock when the process dies), and a
read-only folder can be locked too. It is taken once per run (``single_run.dataset_build_lock``, around data
preparation and loading) and is not re-entrant: another holder, even in the same process, waits. Without
``fcntl`` (not POSIX), or where the file system refuses ``flock`` on a directory, no lock is taken and a warning
says so once.
"""
import contextlib
import logging
import os

_warned = set()


@contextlib.contextmanager
def folder_lock(folder):
    """Hold the exclusive lock of ``folder`` (an existing directory) for the ``with`` block."""
    path = os.path.realpath(folder)
    try:
        import fcntl  # lazy: POSIX only; without it no lock is taken
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:  # e.g. some network file systems
            if path not in _warned:
                _warned.add(path)
                logging.getLogger().warning(f"dataset folder {path} cannot be locked ({err}); concurrent runs "
                                            "on it may see each other's generated files")
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
