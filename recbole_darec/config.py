"""RecBole Config that knows the plugin's models, defaults and datasets.

Precedence, lowest first: RecBole's own properties -> ``properties/overall.yaml`` -> ``properties/model/<Model>.yaml``
-> ``dataset_configs/<dataset>.yaml`` -> config files -> config dict -> command line (RecBole's external order).
"""
import contextlib
import copy
import os
import sys
from pathlib import Path

from recbole.config import Config as RecBoleConfig

from recbole_darec.data.sources import locate
from recbole_darec.checkpoints import stored_overrides
from recbole_darec.cli_errors import UserError
from recbole_darec.config_checks import check_config, load_config_files
from recbole_darec.model import get_model
from recbole_darec.paths import DATASET_CONFIG_DIR, DATASET_DIR, PROPERTIES_DIR, RECBOLE_PROPERTIES_DIR
from recbole_darec.run_id import new_run_id



@contextlib.contextmanager
def recbole_environment():
    """Build RecBole configs without side effects on the caller.

    RecBole's Config parses ``--key=value`` from ``sys.argv`` (a caller's own flags, or a Ray worker's) and
    overwrites ``CUDA_VISIBLE_DEVICES`` from ``gpu_id`` (which would change the GPUs Ray or the caller sees);
    both are restored afterwards.
    """
    argv, cuda = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv
        if cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda


def isolated_config(model, dataset, config_file_list=None, config_dict=None):
    """A plugin :class:`Config` from files and a dict only: the process's command line and GPUs are left alone.

    The caller's ``config_dict`` is left alone too (RecBole eval()s its strings in place): the comparison's checks
    and the sweep driver build several configs from one dict.
    """
    config_dict = copy.copy(config_dict)  # shallow and type-keeping: TypedValues stays TypedValues
    with recbole_environment():
        return Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)


def config_from_checkpoint(checkpoint, extra=None, path="checkpoint"):
    """The Config of a checkpoint's run (plus ``extra`` overrides); stored strings are never evaluated."""
    return isolated_config(checkpoint["model"], checkpoint["dataset"],
                           config_dict=TypedValues({**stored_overrides(checkpoint, path), **(extra or {})}))


def available_datasets():
    """Names of datasets with a plugin config (shipped or expecting user files)."""
    return sorted(p.stem for p in DATASET_CONFIG_DIR.glob("*.yaml"))


class TypedValues(dict):
    """Config overrides whose values are already typed (a checkpoint's): used as they are, never ``eval``-ed."""


class Config(RecBoleConfig):
    """RecBole ``Config`` with plugin model lookup (RecBole's zoo as fallback) and plugin YAML defaults."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        try:
            super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
        except UserError:
            raise
        except (ValueError, TypeError, NotImplementedError, SyntaxError) as err:
            # RecBole's own checks of values (topk, metrics, eval_args, a command-line key given twice) name them
            raise UserError(f"invalid configuration: {err}") from err
        check_config(self)  # unknown keys, epochs < 1, DaRec's K: refused before anything is built or written
        # One Config is one run: its id goes into the checkpoint name and (through RecBole's hash of the config)
        # the log and TensorBoard names, so two runs started in the same second never share a file.
        self.final_config_dict["run_id"] = new_run_id()
        # What the user asked for, before the dataset and model add keys of their own while building: what a
        # checkpoint records, and what resuming it compares.
        self.settings = copy.deepcopy(self.final_config_dict)

    def _load_config_files(self, file_list):
        return load_config_files(self, file_list)

    def _load_variable_config_dict(self, config_dict):
        # RecBole eval()s every string in config_dict; stored data (checkpoints) must never reach that eval.
        if isinstance(config_dict, TypedValues):
            return copy.deepcopy(dict(config_dict))
        return super()._load_variable_config_dict(config_dict)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("model must be given: --model=NAME, a config file, or config_dict['model']")
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError("dataset must be given: --dataset=NAME, a config file, or config_dict['dataset']")
        if isinstance(dataset, str) and any(sep and sep in dataset for sep in (os.sep, os.altsep)):
            folder = Path(dataset)  # RecBole names files <data_path>/<dataset>/<dataset>.inter: a name, not a path
            raise UserError(f"dataset '{dataset}' is a path, not a dataset name: give the folder's name and its parent "
                            f"folder, --dataset={folder.name} --data_path={folder.parent}")
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        files = [PROPERTIES_DIR / "overall.yaml"]
        # The generic DaRec model composes a zoo model named by `backbone`: that model's defaults come first.
        backbone = self.external_config_dict.get("backbone")
        if isinstance(backbone, str) and backbone.isidentifier():  # else refused by check_backbone, unread
            files += [RECBOLE_PROPERTIES_DIR / "model" / f"{backbone}.yaml", PROPERTIES_DIR / "model" / f"{backbone}.yaml"]
        # Base classes first (LightGCNBackbone, DaRecMixin, ...), so a composed model inherits its parts' defaults.
        files += [PROPERTIES_DIR / "model" / f"{klass.__name__}.yaml" for klass in reversed(model_class.__mro__)]
        for path in files:
            if path.is_file():
                self._update_internal_config_dict(str(path))
        dataset_file = DATASET_CONFIG_DIR / f"{dataset}.yaml"
        if dataset_file.is_file():
            loaded = self._update_internal_config_dict(str(dataset_file)) or {}
            self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]
        # Absolute, so Ray workers (which change the working directory) find the shipped data.
        self.internal_config_dict["data_path"] = str(DATASET_DIR)

    def _set_default_parameters(self):
        super()._set_default_parameters()
        # One resolution for every entry point: --data_path, the project's dataset/, or original files beside
        # the checkout converted into a cache. (RecBole hard-wires ml-100k to its wheel's copy; the plugin's own
        # copy keeps semantic caches next to the data, not in site-packages.)
        root = locate(self.dataset, self.external_config_dict.get("data_path"))
        self.final_config_dict["data_path"] = os.path.join(str(root), self.dataset)
        self._check_dataset_files()

    def _check_dataset_files(self):
        """Refuse to fall into RecBole's downloader: a missing dataset is an error that says what to provide."""
        path = Path(self.final_config_dict["data_path"])
        if self.final_config_dict.get("allow_download"):
            return
        if not path.is_dir() or not any(path.glob(f"{self.dataset}*.inter")):
            hint = self.final_config_dict.get("missing_data_hint") or (
                f"put RecBole atomic files ({self.dataset}.inter or {self.dataset}.train/valid/test.inter) there, "
                f"or convert an RLMRec folder with `python -m recbole_darec.data.convert_rlmrec SRC {self.dataset}`"
            )
            raise FileNotFoundError(
                f"dataset '{self.dataset}' not found at {path}: {hint}. "
                f"Datasets with plugin configs: {', '.join(available_datasets())}. "
                "(Set allow_download=True to let RecBole download its own catalog version instead.)"
            )
