"""Trainer additions shared by every model the plugin runs (its own and RecBole's zoo).

The mixin is composed with whatever trainer RecBole would pick for the model (``Trainer``, ``NCLTrainer``, ...), so
RecBole's model-specific training steps are kept and no trainer is copied. It adds:

* checkpoints that load under torch's safe ``weights_only=True`` (the config is stored as a plain dict; RecBole
  pickles its Config object, which torch >= 2.6 refuses to load),
* loss terms logged by name (``model.loss_names``) instead of ``train_loss1, train_loss2``,
* ``epoch_callback(trainer, epoch_idx, valid_score, valid_result)`` after every validation, for Ray Tune,
* ``valid_history``: (epoch, valid_score, valid_result) per evaluation, for training curves.
"""
import enum
import os

import torch
from recbole.utils import get_trainer, set_color


def plain_config(config):
    """The config as a dict of plain Python values (enums by name, devices as strings) for safe checkpoints."""

    def plain(value):
        if isinstance(value, enum.Enum):
            return value.name
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return str(value)

    return {key: plain(value) for key, value in config.final_config_dict.items()}


def load_checkpoint(path, map_location="cpu"):
    """Load a plugin checkpoint with torch's safe loader (no arbitrary unpickling)."""
    return torch.load(path, map_location=map_location, weights_only=True)


class PluginTrainerMixin:
    """Adds safe checkpoints, named loss logging and per-evaluation callbacks to a RecBole trainer."""

    epoch_callback = None

    def __init__(self, config, model):
        super().__init__(config, model)
        self.valid_history = []
        self._epoch_idx = -1

    # -- checkpoints -------------------------------------------------------------------------------------
    def _checkpoint_state(self, epoch):
        return {
            "config": plain_config(self.config),
            "config_overrides": dict(self.config.external_config_dict),
            "model": self.config["model"],
            "dataset": self.config["dataset"],
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        # Write then rename, so an interrupted save never leaves a truncated checkpoint behind.
        tmp_file = f"{saved_model_file}.tmp"
        torch.save(self._checkpoint_state(epoch), tmp_file)
        os.replace(tmp_file, saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        checkpoint = load_checkpoint(resume_file, map_location=self.device)
        if checkpoint["model"].lower() != self.config["model"].lower():
            raise ValueError(
                f"checkpoint {resume_file} is for model {checkpoint['model']}, not {self.config['model']}"
            )
        self.saved_model_file = resume_file
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint {resume_file} loaded; resuming from epoch {self.start_epoch}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_checkpoint(checkpoint_file, map_location=self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        # The parent's own (unsafe) load is skipped: the weights are already in place.
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    # -- logging and callbacks ----------------------------------------------------------------------------
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._epoch_idx = epoch_idx
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        names = getattr(self.model, "loss_names", None)
        if not isinstance(losses, tuple) or not names or len(names) != len(losses):
            return super()._generate_train_loss_output(epoch_idx, s_time, e_time, losses)
        places = self.config["loss_decimal_place"] or 4
        terms = ", ".join(set_color(name, "blue") + f": {value:.{places}f}" for name, value in zip(names, losses))
        total = f"{sum(losses):.{places}f}"
        head = set_color(f"epoch {epoch_idx} training", "green")
        return f"{head} [{set_color('time', 'blue')}: {e_time - s_time:.2f}s, {set_color('loss', 'blue')}: {total}, {terms}]"

    def _valid_epoch(self, valid_data, show_progress=False):
        valid_score, valid_result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self.valid_history.append((self._epoch_idx, float(valid_score), dict(valid_result)))
        if self.epoch_callback is not None:
            self.epoch_callback(self, self._epoch_idx, valid_score, valid_result)
        return valid_score, valid_result


_TRAINER_CACHE = {}


def get_plugin_trainer(config):
    """The trainer RecBole would use for this model, with :class:`PluginTrainerMixin` composed in."""
    base = get_trainer(config["MODEL_TYPE"], config["model"])
    if base not in _TRAINER_CACHE:
        _TRAINER_CACHE[base] = type(f"Plugin{base.__name__}", (PluginTrainerMixin, base), {})
    return _TRAINER_CACHE[base]

