"""Per-run records of a comparison: one JSON object per line in ``<out>/runs.jsonl``.

A record holds everything a table, a plot or a reviewer needs about one (model, seed) run: test metrics at the
best-validation checkpoint, the best validation metrics, training time, epochs to the best validation, the
validation curve, the checkpoint path, the machine and the library versions. Appending line by line (flushed and
fsynced) is what makes an interrupted comparison resumable: a run is done exactly when its line is in the file.
"""
import json
import os
from pathlib import Path

from recbole_darec.data.cold_items import RANKINGS
from recbole_darec.model import get_model
from recbole_darec.model.composed.semantic import SemanticMixin

RUNS_FILE = "runs.jsonl"
# Columns besides the test metrics; lower is better for both.
EXTRA_COLUMNS = ("train_time_s", "epochs_to_best")
COLUMN_LABELS = {"train_time_s": "Time (s)", "epochs_to_best": "Epochs"}
METRIC_LABELS = {"recall": "R", "ndcg": "N", "hit": "H", "precision": "P", "mrr": "MRR", "map": "MAP"}


def model_kind(name):
    """``"plugin"`` for a model with an LLM-alignment head (its class mixes in the plugin's ``SemanticMixin``, as
    every head does), ``"baseline"`` for everything else.

    Baselines are RecBole's zoo models and the plugin's own backbones without an alignment head
    (``LightGCNBackbone``, ``SGLBackbone``, ``LightGCL``): the models an alignment method has to beat. A name no
    lookup resolves (a record of a model since removed) is a baseline.
    """
    try:
        model_class = get_model(name)
    except (ValueError, ImportError):
        return "baseline"
    return "plugin" if issubclass(model_class, SemanticMixin) else "baseline"


def column_label(column):
    """Short table header: ``recall@20`` -> ``R@20``, ``train_time_s`` -> ``Time (s)``."""
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    name, _, k = column.partition("@")
    ranking, family = _ranking_and_family(name.lower())  # cold_recall@20 -> cold R@20 (eval_protocol cold_items)
    if ranking and family in METRIC_LABELS:
        return f"{ranking} {METRIC_LABELS[family]}@{k}"
    short = METRIC_LABELS.get(name.lower(), name)
    return f"{short}@{k}" if k else short


def higher_is_better(column):
    """Metrics are better higher; time and epochs lower."""
    return column not in EXTRA_COLUMNS


def metric_columns(records):
    """Test-metric names of the records, ordered by metric family then k (recall@5, recall@10, ..., ndcg@5, ...)."""
    names = {name for record in records for name in record.get("test", {})}
    families = list(dict.fromkeys(name.partition("@")[0] for name in sorted(names, key=_family_rank)))

    def k_of(name):
        k = name.partition("@")[2]
        return int(k) if k.isdigit() else 0

    return [n for fam in families for n in sorted((n for n in names if n.partition("@")[0] == fam), key=k_of)]


RANKING_ORDER = ("", *RANKINGS)  # eval_protocol cold_items: the all ranking first, then cold, then warm


def _ranking_and_family(name):
    """``cold_recall`` -> ``('cold', 'recall')``; a name without a ranking prefix -> ``('', name)``."""
    ranking, _, family = name.partition("_")
    return (ranking, family) if ranking in RANKINGS else ("", name)


def _family_rank(name):
    family = name.partition("@")[0].lower()
    ranking, base = _ranking_and_family(family)
    order = list(METRIC_LABELS)
    return (RANKING_ORDER.index(ranking), order.index(base) if base in order else len(order), family)


def read_records(path):
    """All records of a runs file (empty list when it does not exist). A truncated last line is ignored."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # the process died mid-write: that run is simply not done
                continue
            raise ValueError(f"{path}:{number}: not a JSON record; fix or remove that line") from None
    return records


PATH_FIELDS = ("checkpoint", "log_file")  # written by the run's machine; kept relative to the comparison's folder


def portable(record, out_dir):
    """``record`` with its file paths relative to ``out_dir`` (the comparison's folder), so committed or copied
    records name no folder of the machine that ran them; :func:`resolve_path` reads them back."""
    return {**record, **{key: os.path.relpath(record[key], out_dir) for key in PATH_FIELDS
                         if isinstance(record.get(key), str) and os.path.isabs(record[key])}}


def resolve_path(value, out_dir):
    """A record's path as a path on this machine (relative ones are under ``out_dir``)."""
    return Path(value) if os.path.isabs(value) else Path(out_dir) / value


def append_record(path, record):
    """Append one record as a line, flushed to disk before returning (a crash right after keeps it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True)
    with path.open("a", encoding="utf-8") as handle:
        if handle.tell() and not _ends_with_newline(path):
            handle.write("\n")  # a torn last line must not swallow this record
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _ends_with_newline(path):
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def done_keys(records, dataset):
    """(model, seed) pairs that already have a record for ``dataset``."""
    return {(r["model"], int(r["seed"])) for r in records if r.get("dataset") == dataset}


def select(records, dataset, models=None, seeds=None):
    """The records of ``dataset`` for the given models and seeds (all when None); the latest wins on duplicates."""
    chosen = {}
    for record in records:
        if record.get("dataset") != dataset:
            continue
        if models is not None and record["model"] not in models:
            continue
        if seeds is not None and int(record["seed"]) not in seeds:
            continue
        chosen[(record["model"], int(record["seed"]))] = record
    return list(chosen.values())


def column_value(record, column):
    """A record's value for a table column (a test metric or one of :data:`EXTRA_COLUMNS`)."""
    if column in EXTRA_COLUMNS:
        return float(record[column])
    return float(record["test"][column])
