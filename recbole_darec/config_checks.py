"""Refusals of configurations that would otherwise train silently on something the user did not ask for.

Called by :class:`recbole_darec.config.Config` once the final config exists, before anything is written. Each
refusal is a :class:`~recbole_darec.cli_errors.UserError` that names the key, its value, where it came from and
what to do.
"""

import torch
import yaml

from recbole_darec.cli_errors import UserError
from recbole_darec.config_keys import ESCAPE_KEY, did_you_mean, unknown_keys
from recbole_darec.data.cold_items import RANKINGS, cold_settings, is_cold_protocol
from recbole_darec.model import get_model
from recbole_darec.model.composed.cold_scale import check_cold_scale
from recbole_darec.model.composed.zoo import ZooBackbone
from recbole_darec.yaml_files import read_yaml_file

COLD_RANKING_PREFIXES = tuple(f"{ranking}_" for ranking in RANKINGS)  # eval_protocol cold_items' metric names


def read_config_file(path, loader=yaml.FullLoader):
    """One config file as a dict ({} when empty); a missing, broken or non-mapping file is a UserError naming it
    (a :class:`~recbole_darec.yaml_files.YamlFileError` for the first two).

    The only place config YAML is read, so a run and the checks before it (``report.validate``) report a bad
    file the same way. ``loader``: RecBole's (a Config's ``yaml_loader``, which extends FullLoader's floats).
    """
    loaded = read_yaml_file(path, loader, "config file", missing="{what} {path} does not exist (check --config_files)",
                            broken="{what} {path}{problem}; fix the file")
    if loaded is None:
        return {}  # an empty file sets nothing, as in RecBole
    if not isinstance(loaded, dict):
        raise UserError(f"config file {path}: expected 'key: value' lines, got {type(loaded).__name__}")
    return loaded


def load_config_files(config, file_list):
    """RecBole's file loading (its YAML loader), one file at a time so that a missing or broken file is named.

    Returns the merged dict and remembers which file set each key (``config.key_sources``) for the unknown-key
    message.
    """
    merged, sources = {}, {}
    for path in file_list or []:
        loaded = read_config_file(path, config.yaml_loader)
        merged.update(loaded)
        sources.update(dict.fromkeys(loaded, f"config file {path}"))
    config.key_sources = sources
    return merged


def _source(config, key):
    if key in config.cmd_config_dict:
        return "command line"
    if key in config.variable_config_dict:
        return "config_dict"
    return getattr(config, "key_sources", {}).get(key, "config file")


def check_config(config):
    """Every refusal below, in the order a user would want to fix them."""
    check_unknown_keys(config)
    check_value_types(config)
    check_epochs(config)
    check_ranges(config)
    check_learner(config)
    check_valid_metric(config)
    check_cold_protocol(config)
    check_darec_k(config)
    check_text_control(config)
    check_backbone(config)
    check_model_settings(config)


def check_unknown_keys(config):
    """A key no YAML or code defines is a typo until the user says otherwise (``allow_unknown_keys``)."""
    unknown = unknown_keys(list(config.external_config_dict), config.external_config_dict)
    if unknown:
        where = ", ".join(sorted({_source(config, k) for k in unknown}))
        from recbole_darec.config_keys import known_keys

        raise UserError(
            f"unknown config key {did_you_mean(unknown, known_keys())} ({where}): no model reads it, so it would be "
            f"ignored. Fix the name, or declare your own keys with {ESCAPE_KEY}: [{', '.join(map(str, unknown))}]"
        )


def check_value_types(config):
    """A word where the YAML default is a number or a boolean (``--train_batch_size=4k``) fails deep inside
    RecBole, or worse, is taken as truthy; refuse it here."""
    for key, value in config.external_config_dict.items():
        default = config.internal_config_dict.get(key)
        if not isinstance(value, str) or default is None or isinstance(default, str):
            continue
        if isinstance(default, bool):
            expected = "True or False"
        elif isinstance(default, (int, float)):
            expected = "a number"
        else:
            continue
        raise UserError(f"{key}={value!r} ({_source(config, key)}): expected {expected} (default {default!r})")


def _int_value(config, key):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{key}={value!r} ({_source(config, key)}): must be a whole number")
    return value


def check_epochs(config):
    """``epochs < 1`` would save an untrained model and report its test metrics."""
    if _int_value(config, "epochs") < 1:
        raise UserError(f"epochs={config['epochs']} ({_source(config, 'epochs')}): must be >= 1")


POSITIVE_KEYS = ("train_batch_size", "eval_batch_size", "embedding_size", "semantic_batch_size")
NON_NEGATIVE_KEYS = ("learning_rate", "weight_decay")
SEED_LIMIT = 2 ** 32  # numpy's legacy seeding (RecBole's init_seed) takes [0, 2**32)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_ranges(config):
    """Values RecBole and torch take without a check: a batch size of 0 loops forever in RecBole's data loader, a
    negative learning rate or weight decay and a seed outside numpy's range end in tracebacks after the data load."""
    for key in POSITIVE_KEYS:
        value = config.final_config_dict.get(key)
        if _number(value) and not value > 0:
            raise UserError(f"{key}={value} ({_source(config, key)}): must be > 0")
    for key in NON_NEGATIVE_KEYS:
        value = config.final_config_dict.get(key)
        if _number(value) and not value >= 0:  # NaN fails too
            raise UserError(f"{key}={value} ({_source(config, key)}): must be >= 0")
    seed = _int_value(config, "seed")
    if not 0 <= seed < SEED_LIMIT:
        raise UserError(f"seed={seed} ({_source(config, 'seed')}): must be in [0, 2**32 - 1]")


LEARNERS = ("adam", "adamw", "sgd", "adagrad", "rmsprop", "sparse_adam")  # RecBole's Trainer._build_optimizer


def check_learner(config):
    """RecBole replaces an unknown optimizer name by Adam with a warning; a typo would train with Adam."""
    learner = config["learner"]
    if isinstance(learner, str) and learner.lower() not in LEARNERS:
        raise UserError(f"learner={learner} ({_source(config, 'learner')}): not an optimizer RecBole knows; use "
                        f"one of {', '.join(LEARNERS)}")


def check_valid_metric(config):
    """RecBole looks ``valid_metric`` up only after the first training epoch (a KeyError there). Under
    ``eval_protocol: cold_items`` the cold and warm rankings' metrics (``cold_recall@20``, ``warm_ndcg@10``) may
    drive early stopping too."""
    metric = str(config["valid_metric"])
    name, at, k = metric.lower().partition("@")
    ranking, cold_protocol = "", is_cold_protocol(config)
    for prefix in COLD_RANKING_PREFIXES:
        if name.startswith(prefix):
            ranking, name = prefix, name[len(prefix):]
    metrics = [str(m).lower() for m in config["metrics"]]
    topk = [int(t) for t in config["topk"] or []]
    if ranking and not cold_protocol:
        raise UserError(f"valid_metric={metric} ({_source(config, 'valid_metric')}): the {ranking[:-1]} ranking "
                        f"exists only under eval_protocol=cold_items")
    if name not in metrics or (at and (not k.isdigit() or int(k) not in topk)):
        prefixes = ("",) + (COLD_RANKING_PREFIXES if cold_protocol else ())
        choices = [f"{p}{m}@{t}" for p in prefixes for m in metrics for t in topk] if topk else metrics
        raise UserError(f"valid_metric={metric} ({_source(config, 'valid_metric')}) is not among the evaluated "
                        f"metrics: use one of {', '.join(choices)} (or add it to metrics/topk)")


def check_cold_protocol(config):
    """``cold_items``' ratio and seed and the ``cold_scale`` rule, refused before the data load."""
    try:
        check_cold_scale(config["cold_scale"])
    except ValueError as err:
        raise UserError(f"{err} ({_source(config, 'cold_scale')})") from None
    if is_cold_protocol(config):
        cold_settings(config)


def check_backbone(config):
    """The generic ``DaRec`` composes the zoo model named by ``backbone``; the model would only look it up after the
    data load and the profile encoding."""
    if not issubclass(config.model_class, ZooBackbone):
        return
    name = config["backbone"]
    if not name:
        raise UserError(f"model {config['model']} composes the zoo model named by config key 'backbone': set "
                        "--backbone=NAME, a model with forward() -> (user_e, item_e), e.g. LightGCN")
    try:
        get_model(name)
    except UserError as err:  # a name neither the plugin nor RecBole knows
        raise UserError(f"backbone={name} ({_source(config, 'backbone')}): {err}") from None


def check_darec_k(config):
    """DaRec's K against N̂ and against the most distinct nodes one training batch can hold.

    Ω holds a batch's unique users and positive items, at most N̂ of them; K-means needs K distinct rows on
    each side, so a larger K makes the local term a constant 0 for the whole run.
    """
    if "darec_k" not in config.final_config_dict or config["darec_k"] is None:
        return
    k = _int_value(config, "darec_k")
    if config["darec_sample_size"] is not None and k > _int_value(config, "darec_sample_size"):
        raise UserError(f"darec_k={k} > darec_sample_size={config['darec_sample_size']}: K-means needs at least "
                        f"K of the N̂ sampled nodes; lower darec_k or raise darec_sample_size")
    batch = config["train_batch_size"]
    if isinstance(batch, int) and not isinstance(batch, bool) and k > 2 * batch:
        raise UserError(f"darec_k={k}: a training batch of train_batch_size={batch} interactions holds at most "
                        f"{2 * batch} distinct users and items, fewer than K; lower darec_k or raise the batch size")


def check_text_control(config):
    """A misspelt text control would otherwise surface only when an aligned run builds its profiles."""
    from recbole_darec.semantic.text_controls import KEYS as TEXT_CONTROL_KEYS, text_control

    try:
        text_control({key: config[key] for key in TEXT_CONTROL_KEYS if key in config.final_config_dict})
    except ValueError as err:
        key = str(err).partition("=")[0]
        raise UserError(f"{err} ({_source(config, key)})") from None


# --- Checks that need the loaded dataset's counts: made by single_run.build before the model is allocated. -------

OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sparse_adam": 2, "rmsprop": 1, "adagrad": 1, "sgd": 0}


def check_with_dataset(config, dataset):
    """Refusals that need the number of users and items (``dataset``: RecBole's, ids counted with [PAD])."""
    check_table_memory(config, dataset)
    check_darec_k_per_batch(config, dataset)


def available_memory(device):
    """(bytes free for new tensors on ``device``, its name): CUDA's free memory, else the host's available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0], f"GPU {device}"
    import psutil  # lazy: only a CPU run's memory check reads it

    return psutil.virtual_memory().available, "available RAM"


def check_table_memory(config, dataset):
    """The user and item embedding tables, their gradients and the optimizer's state must fit the device: a huge
    ``embedding_size`` otherwise asks the allocator for hundreds of GB (a traceback) or swaps the host to a halt."""
    d = config.final_config_dict.get("embedding_size")
    if not _number(d) or d <= 0:
        return
    copies = 2 + OPTIMIZER_STATES.get(str(config["learner"]).lower(), 2)  # weights, gradients, optimizer state
    rows = dataset.user_num + dataset.item_num
    need = rows * int(d) * 4 * copies
    free, where = available_memory(config["device"])
    if need > free:
        raise UserError(f"embedding_size={d} ({_source(config, 'embedding_size')}): the embedding tables need "
                        f"{need / 1e9:.1f} GB ({rows} users and items x {d} x 4 bytes x {copies}: weights, gradients "
                        f"and {config['learner']}'s state) but the {where} is {free / 1e9:.1f} GB; "
                        "lower embedding_size")


def check_darec_k_per_batch(config, dataset):
    """DaRec's K against the distinct nodes a batch of this dataset can hold: Ω is at most min(N̂, users in a batch
    + items in a batch), each at most ``train_batch_size`` and at most the dataset's count. A larger K skips the
    local term on every batch (K-means needs K distinct rows), i.e. trains a whole run without it."""
    if config.final_config_dict.get("darec_k") is None:
        return
    k, batch, cap = config["darec_k"], config["train_batch_size"], config["darec_sample_size"]
    users, items = dataset.user_num - 1, dataset.item_num - 1  # without [PAD]
    most = min(batch, users) + min(batch, items)
    if cap is not None:
        most = min(most, cap)
    if k > most:
        raise UserError(f"darec_k={k} ({_source(config, 'darec_k')}): a training batch holds at most {most} distinct "
                        f"users and items here (train_batch_size={batch}, {users} users, {items} items, "
                        f"darec_sample_size={cap}), fewer than K, so the local alignment would be 0 on every batch; "
                        f"use darec_k <= {most}")


def check_model_settings(config):
    """The model's own settings that need no data (an aligned head's keys, its schedule; ``check_config`` of the
    model class), refused before anything is loaded or written instead of after the data load."""
    check = getattr(config.model_class, "check_config", None)
    if check is None:
        return
    try:
        check(config)
    except ValueError as err:
        if isinstance(err, UserError):
            raise
        raise UserError(str(err)) from None
