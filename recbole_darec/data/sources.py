"""Where a dataset's RecBole atomic files come from.

Some datasets are third-party data without a redistribution licence: the project never ships them, it converts
the original files on first use into an ignored cache folder. Every entry point (training CLI, Ray Tune,
comparisons, the semantic CLI) resolves a dataset through :func:`locate`, in this order:

1. ``data_path`` (``--data_path``, a config file or dict): RecBole atomic files in ``<data_path>/<dataset>/`` are
   used as they are; the original files of a known source there (or directly in ``data_path``) are converted.
2. The project's ``dataset/<dataset>/`` (shipped data, or files a user converted there).
3. The original files in ``shared/data/<subfolder>`` beside the checkout (or ``$RECBOLE_DAREC_SHARED_DATA``).

Conversions land in ``.cache/datasets/<dataset>-<digest of the source folder>/<dataset>/`` atomically (temporary
folder renamed into place) under a lock, and are redone when a source file's content changes.
"""
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from recbole_darec.data.convert_rechorus import convert_rechorus
from recbole_darec.data.convert_rlmrec import convert_rlmrec
from recbole_darec.data.convert_unisrec import convert_unisrec
from recbole_darec.dataset_lock import folder_lock
from recbole_darec.paths import CACHE_DIR, DATASET_DIR, PROJECT_ROOT  # module names: tests point them elsewhere

STAMP = ".source.json"


def shared_data_dir():
    """The folder of original third-party data beside the checkout (overridable for other layouts)."""
    return Path(os.environ.get("RECBOLE_DAREC_SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data")


def _convert_rlmrec(src, name, out_dir):
    return convert_rlmrec(src, name, out_dir, force=True, verbose=False)


def _convert_unisrec(src, name, out_dir):
    return convert_unisrec(src, name, "Scientific", out_dir, force=True, verbose=False)


def _convert_rechorus_office(src, name, out_dir):
    return convert_rechorus(src, name, out_dir, "Office.text", "Office.item2index", force=True, verbose=False)


@dataclass(frozen=True)
class RawSource:
    """Original files of one dataset: where they sit beside the checkout, how to recognise and convert them."""

    shared_subdir: str
    files: tuple
    convert: object  # (src_dir, dataset name, out_dir) -> converted folder

    def holds(self, folder):
        return all((Path(folder) / name).is_file() for name in self.files)


RLMREC_FILES = ("trn_mat.pkl", "val_mat.pkl", "tst_mat.pkl")
UNISREC_SCIENTIFIC_FILES = ("Scientific.train.inter", "Scientific.valid.inter", "Scientific.test.inter",
                            "Scientific.text", "Scientific.item2index")
RECHORUS_OFFICE_FILES = ("train.csv", "dev.csv", "test.csv", "Office.text", "Office.item2index")
SOURCES = {
    "yelp": RawSource("rlmrec/yelp", RLMREC_FILES, _convert_rlmrec),
    "amazon-book": RawSource("rlmrec/amazon", RLMREC_FILES, _convert_rlmrec),
    "amazon-scientific": RawSource("amazon_scientific", UNISREC_SCIENTIFIC_FILES, _convert_unisrec),
    "amazon-office": RawSource("amazon_office", RECHORUS_OFFICE_FILES, _convert_rechorus_office),
}


def has_atomic_files(folder, dataset):
    """True when ``folder`` holds RecBole interaction files of ``dataset`` (one ``.inter`` or benchmark splits)."""
    folder = Path(folder)
    return folder.is_dir() and any(folder.glob(f"{dataset}*.inter"))


def _fingerprint(source, folder):
    """Size and SHA-256 of each source file. Content, not mtime: a copied or re-mounted source folder gets new
    mtimes, and a reconversion would also drop what was derived in the converted folder (LLM profiles and
    embeddings, minutes of encoding). The sources are a few MB, hashed in milliseconds."""
    return {name: [(folder / name).stat().st_size, hashlib.sha256((folder / name).read_bytes()).hexdigest()]
            for name in source.files}


def converted_root(dataset, raw_folder):
    """The cache root holding ``<dataset>/`` converted from ``raw_folder``; converts when missing or stale."""
    source, raw_folder = SOURCES[dataset], Path(raw_folder).resolve()
    key = f"{dataset}-{hashlib.sha256(str(raw_folder).encode()).hexdigest()[:10]}"
    root = CACHE_DIR / key
    stamp = {"source": str(raw_folder), "files": _fingerprint(source, raw_folder)}
    root.mkdir(parents=True, exist_ok=True)
    with folder_lock(root):  # conversions of one source take turns; readers never see a half-written folder
        target = root / dataset
        try:
            if json.loads((target / STAMP).read_text()) == stamp:
                return root
        except (OSError, ValueError):
            pass
        # The converters replace root/<dataset> atomically; the stamp comes last, so an interrupted run before
        # it only means one more conversion next time.
        source.convert(raw_folder, dataset, root)
        (target / STAMP).write_text(json.dumps(stamp))
    return root


def locate(dataset, data_path=None):
    """The root folder (RecBole's ``data_path`` before ``/<dataset>``) that holds ``dataset``'s atomic files.

    Returns the first match of the module's order; when nothing matches, returns where the files were expected
    (``data_path`` or the project's ``dataset/``) so that the caller's error names that place.
    """
    source = SOURCES.get(dataset)
    if data_path:
        root = Path(data_path)
        if has_atomic_files(root / dataset, dataset):
            return root
        for folder in (root / dataset, root):
            if source is not None and source.holds(folder):
                return converted_root(dataset, folder)
        return root
    if has_atomic_files(DATASET_DIR / dataset, dataset):
        return DATASET_DIR
    if source is not None and source.holds(shared_data_dir() / source.shared_subdir):
        return converted_root(dataset, shared_data_dir() / source.shared_subdir)
    return DATASET_DIR
