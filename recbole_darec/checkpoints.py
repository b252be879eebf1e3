"""What a plugin checkpoint holds beyond the weights, and what is (not) trusted when one is read.

A checkpoint is data, never code: it is read with torch's ``weights_only=True`` loader, its config overrides are
stored as typed values and handed to the Config as :class:`~recbole_darec.config.TypedValues` (RecBole's
``eval()`` of config strings never sees them), and the model and dataset it names must be plain names. It
records the dataset, the seed and a fingerprint of the train/valid/test split, so it cannot be resumed or
reloaded into another run by mistake; the RNG states (python, numpy, torch, CUDA, the training dataloader's
shuffle generator) make a resumed run continue exactly where the interrupted one stopped.
"""
import enum
import hashlib
import os
import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from recbole_darec.atomic import atomic_path
from recbole_darec.cli_errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
# Where the original run wrote: meaningless (or harmful) when the checkpoint is rebuilt elsewhere.
_NOT_RESTORED = ("checkpoint_dir", "resume_from")
LAST_SUFFIX = ".last.pth"
BEST, LAST = "best", "last"  # a run's best checkpoint and its every-epoch one (what a resume continues)


def plain(value):
    """A config value as plain Python data (enums by name, tuples as lists, other objects as strings)."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):  # numpy scalars (RecBole's metrics) would need numpy globals to load
        value = value.item()
    if value is None or isinstance(value, str):
        return value
    for kind in (bool, int, float):  # exact builtins: subclasses pickle as their own class
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def load_checkpoint(path, map_location="cpu"):
    """Read a plugin checkpoint with torch's safe loader; anything unreadable is a :class:`UserError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):  # every checkpoint torch >= 1.6 writes is a zip archive
        raise UserError(f"checkpoint {path} is not a readable torch checkpoint (not a zip archive); "
                        "point to a .pth file saved by this plugin")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise UserError(f"checkpoint {path} holds objects other than tensors and plain data (not written by "
                            "this plugin); it is not loaded, since unpickling it could run code") from None
        raise UserError(f"checkpoint {path} is not a readable torch checkpoint ({str(err).splitlines()[0][:80]}); "
                        "point to a .pth file saved by this plugin") from None
    except (RuntimeError, EOFError, IndexError, ValueError, zipfile.BadZipFile, OSError) as err:
        raise UserError(f"checkpoint {path} is not a readable torch checkpoint ({type(err).__name__}); "
                        "point to a .pth file saved by this plugin") from None
    missing = [k for k in ("model", "dataset", "state_dict", "epoch") if not isinstance(checkpoint, dict)
               or k not in checkpoint]
    if missing:
        raise UserError(f"checkpoint {path} is not a plugin checkpoint (no {', '.join(missing)})")
    for key in ("model", "dataset"):
        if not isinstance(checkpoint[key], str) or not _NAME.match(checkpoint[key]):
            raise UserError(f"checkpoint {path}: {key} {checkpoint[key]!r} is not a plain name")
    return checkpoint


def stored_overrides(checkpoint, path="checkpoint"):
    """The run's config overrides, as typed values for :class:`~recbole_darec.config.TypedValues`."""
    overrides = checkpoint.get("config_overrides") or {}
    if not isinstance(overrides, dict):
        raise UserError(f"{path}: config_overrides is {type(overrides).__name__}, not a mapping")
    return {str(k): v for k, v in overrides.items() if k not in _NOT_RESTORED}


def split_fingerprint(train_data, valid_data, test_data):
    """sha256 (16 hex digits) over the user and item ids of the three splits, in order."""
    digest = hashlib.sha256()
    for data in (train_data, valid_data, test_data):
        dataset = data.dataset
        for field in (dataset.uid_field, dataset.iid_field):
            digest.update(np.ascontiguousarray(dataset.inter_feat[field].numpy()).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def check_belongs(checkpoint, config, fingerprint, path):
    """Refuse a checkpoint of another model, dataset, seed or split, naming both values."""
    pairs = [("model", checkpoint.get("model"), config["model"]),
             ("dataset", checkpoint.get("dataset"), config["dataset"])]
    if "seed" in checkpoint:
        pairs.append(("seed", checkpoint["seed"], config["seed"]))
    if checkpoint.get("split_fingerprint") and fingerprint:
        pairs.append(("split fingerprint", checkpoint["split_fingerprint"], fingerprint))
    for what, stored, current in pairs:
        if str(stored).lower() != str(current).lower():
            raise UserError(f"checkpoint {path} is for {what} {stored}, this run has {what} {current}; "
                            f"use a checkpoint of this run or set --{what.split()[0]}={stored}")


# Where and on what a run executes, not what it trains: these may differ between an interrupted run and its
# continuation (another GPU, a moved data folder; the split fingerprint still guards the data itself).
_MACHINE_KEYS = frozenset({"checkpoint_dir", "resume_from", "data_path", "device", "gpu_id", "use_gpu", "state",
                           "show_progress", "worker", "nproc", "offset", "local_rank", "world_size", "ip", "port",
                           "single_spec", "run_id"})
# A user's --resume_from continues one run: its data folder counts (other embedding files, other texts); how many
# more epochs it may take and how it reports may be changed on purpose, and the run says so.
_RESUME_IGNORED = (_MACHINE_KEYS - {"data_path"}) | {"config_files"}
RESUME_OVERRIDABLE = frozenset({"epochs", "stopping_step", "eval_step", "eval_batch_size", "metric_decimal_place",
                                "loss_decimal_place"})


def setting_differences(checkpoint, config, ignored=_MACHINE_KEYS):
    """Config keys whose value in ``config`` differs from the checkpoint's run, ``ignored`` keys aside (sorted)."""
    stored = checkpoint.get("config") or {}
    current = {key: plain(value) for key, value in config.final_config_dict.items()}
    return sorted(key for key in set(stored) | set(current)
                  if key not in ignored and stored.get(key) != current.get(key))


def settings(config):
    """The run's settings as plain data: its config as built from files, dict and command line, before the dataset
    and model added keys of their own (so a run can be compared with another before anything is loaded)."""
    return {key: plain(value) for key, value in getattr(config, "settings", config.final_config_dict).items()}


def check_same_settings(checkpoint, config, path):
    """Refuse to resume a checkpoint written with other settings, listing each differing key with both values;
    returns the deliberate changes that are allowed (:data:`RESUME_OVERRIDABLE`) as ``key: old -> new`` texts."""
    stored = checkpoint.get("settings")
    if not stored:  # written before checkpoints recorded their settings
        return []
    current = settings(config)
    changed = sorted(key for key in set(stored) | set(current)
                     if key not in _RESUME_IGNORED and stored.get(key) != current.get(key))
    said = {key: f"{key}: {stored.get(key)!r} -> {current.get(key)!r}" for key in changed}
    refused = [said[key] for key in changed if key not in RESUME_OVERRIDABLE]
    if refused:
        raise UserError(f"checkpoint {path} was trained with other settings ({'; '.join(refused)}; checkpoint -> "
                        "this run): resume with the run's own settings, or start a new run without --resume_from")
    return [said[key] for key in changed if key in RESUME_OVERRIDABLE]


def load_weights(model, checkpoint, path):
    """Weights into ``model``; a shape mismatch (another embedding size, another dataset) is one clear line."""
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise UserError(f"checkpoint {path} does not fit this model's configuration ({first}); use the same "
                        "model settings (embedding_size, n_layers, ...) as the run that saved it") from None
    model.load_other_parameter(checkpoint.get("other_parameter"))


# ------------------------------------------------------------------------------------------------- RNG state
def rng_state(generator=None):
    """Every random stream a training epoch draws from, as tensors and plain lists (safe-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state = {
        "python": [version, list(internal), py_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def restore_rng_state(state, generator=None):
    """Inverse of :func:`rng_state`."""
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("loader") is not None:
        generator.set_state(state["loader"])


# ------------------------------------------------------------------------------------------------ file names
def last_path(best_path):
    """``saved/X.pth`` -> ``saved/X.last.pth``: the every-epoch checkpoint beside the best one."""
    best_path = str(best_path)
    return (best_path[:-4] if best_path.endswith(".pth") else best_path) + LAST_SUFFIX


def role(checkpoint):
    """:data:`BEST` or :data:`LAST` (checkpoints written before roles were stored: the every-epoch one has
    ``finished``)."""
    return checkpoint.get("role") or (LAST if "finished" in checkpoint else BEST)


def _peek(path):
    """A checkpoint's fields without reading its tensors (memory-mapped), or None when it is not one of ours."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001  any unreadable or foreign file is simply not a partner
        return None
    return checkpoint if isinstance(checkpoint, dict) and "epoch" in checkpoint else None


def partner(path, checkpoint):
    """The other checkpoint of ``path``'s run in its folder (best <-> every-epoch), found by content: the same run
    id and the other role, so renamed files still pair. The usual name is tried first; None when there is none.
    Checkpoints written before run ids were stored pair by the usual name only."""
    path = Path(path)
    wanted = BEST if role(checkpoint) == LAST else LAST
    if wanted == LAST:
        usual = Path(last_path(path))
    else:
        usual = path.parent / (checkpoint.get("best_file") or "")
    run_id = checkpoint.get("run_id")
    candidates = [usual] + ([p for p in sorted(path.parent.glob("*.pth")) if p != usual] if run_id else [])
    for candidate in candidates:
        if candidate == path or not candidate.is_file():
            continue
        other = _peek(candidate)
        if other is not None and role(other) == wanted and other.get("run_id") == run_id:
            return candidate
    return None


def resume_source(path):
    """The file to resume from: the every-epoch checkpoint of ``path``'s run when there is one, else ``path``."""
    if not os.path.isfile(path):
        return str(path)  # load_checkpoint names the missing file
    checkpoint = _peek(path)
    if checkpoint is None or role(checkpoint) == LAST:
        return str(path)
    found = partner(path, checkpoint)
    return str(found) if found is not None else str(path)


def atomic_save(state, path):
    """``torch.save`` to a temp file, then rename: a kill mid-save never leaves a truncated checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
