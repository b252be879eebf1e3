"""Trainer additions shared by every model the plugin runs (its own and RecBole's zoo).

The mixin is composed with whatever trainer RecBole would pick for the model (``Trainer``, ``NCLTrainer``, ...), so
RecBole's model-specific training steps are kept and no trainer is copied. It adds:

* checkpoints that load under torch's safe ``weights_only=True`` (the config is stored as a plain dict; RecBole
  pickles its Config object, which torch >= 2.6 refuses to load),
* loss terms logged by name (``model.loss_names``) instead of ``train_loss1, train_loss2``,
* the plugin models' one per-epoch hook, ``model.start_training_epoch()``, before every training epoch,
* ``epoch_callback(trainer, epoch_idx, valid_score, valid_result)`` after every validation, for Ray Tune,
* ``valid_history``: (epoch, valid_score, valid_result) per evaluation, for training curves,
* the cold-item protocol's evaluation (:mod:`recbole_darec.cold_eval`) on loaders that carry ``cold_items``,
* exact resume: a ``.last.pth`` checkpoint beside the best one after every epoch, with optimizer, RNG and
  early-stopping state; ``resume_checkpoint`` refuses a checkpoint of another model, dataset, seed or split.
"""
import os
import time

import torch
from recbole.utils import get_local_time, get_trainer, set_color

from recbole_darec import checkpoints, cold_eval
from recbole_darec.checkpoints import load_checkpoint, plain
from recbole_darec.run_id import new_run_id


def plain_config(config):
    """The config as a dict of plain Python values (enums by name, devices as strings) for safe checkpoints."""
    return {key: plain(value) for key, value in config.final_config_dict.items()}


class PluginTrainerMixin:
    """Adds safe checkpoints, named loss logging and per-evaluation callbacks to a RecBole trainer."""

    epoch_callback = None

    def __init__(self, config, model):
        super().__init__(config, model)
        self.valid_history = []
        self._epoch_idx = -1
        self.split_fingerprint = None  # set by single_run.build(); recorded in and checked against checkpoints
        self._train_data = None
        self._pending_rng = None  # RNG state of a resumed checkpoint, restored right before training continues
        self._finished = False  # resumed from the last checkpoint of a run that had already ended
        self._save_last = False
        self._last_file = None  # the every-epoch checkpoint resumed from, kept under its (maybe renamed) name
        self.resumed_from_epoch = None  # the last finished epoch of the checkpoint this run continues
        self.train_time_before_s = 0.0  # seconds of training before that checkpoint (kept across resumes)
        self._fit_started = None
        # RecBole names the checkpoint <model>-<time to the second>.pth: two runs started in the same second from
        # one folder would test and resume each other's weights. The run id makes the name this run's own.
        self.run_id = config["run_id"] or new_run_id()
        self.saved_model_file = os.path.join(self.checkpoint_dir,
                                             f"{config['model']}-{get_local_time()}-{self.run_id}.pth")

    # -- checkpoints -------------------------------------------------------------------------------------
    def _checkpoint_state(self, epoch):
        generator = getattr(self._train_data, "generator", None)
        scheduler = getattr(self, "scheduler", None)
        return {
            "config": plain_config(self.config),
            "settings": checkpoints.settings(self.config),  # before the build: what a resume compares
            "config_overrides": plain(dict(self.config.external_config_dict)),
            "model": self.config["model"],
            "dataset": self.config["dataset"],
            "run_id": self.run_id,  # shared by the run's best and every-epoch checkpoints: pairs them by content
            "seed": self.config["seed"],
            "split_fingerprint": self.split_fingerprint,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": None if self.best_valid_result is None else plain(dict(self.best_valid_result)),
            "valid_history": [[int(e), float(s), plain(dict(r))] for e, s, r in self.valid_history],
            "train_loss": {int(e): plain(v) for e, v in self.train_loss_dict.items()},
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if hasattr(scheduler, "state_dict") else None,
            "rng": checkpoints.rng_state(generator),
            "best_file": os.path.basename(self.saved_model_file),
            "train_time_s": self.train_time_s(),
        }

    def train_time_s(self):
        """Seconds of training so far, over every resume of this run."""
        running = 0.0 if self._fit_started is None else time.perf_counter() - self._fit_started
        return self.train_time_before_s + running

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = self._checkpoint_state(epoch)
        state["role"] = checkpoints.BEST
        checkpoints.atomic_save(state, saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def _save_last_checkpoint(self, epoch, finished=False):
        """The every-epoch checkpoint beside the best one: what ``--resume_from`` continues from."""
        if not self._save_last or (not self.config["single_spec"] and self.config["local_rank"] != 0):
            return
        state = self._checkpoint_state(epoch)
        state["finished"], state["role"] = finished, checkpoints.LAST
        checkpoints.atomic_save(state, self._last_file or checkpoints.last_path(self.saved_model_file))

    def resume_checkpoint(self, resume_file, checkpoint=None):
        """Continue after the last finished epoch (given a best checkpoint, the ``.last.pth`` beside it is used).

        ``checkpoint``: the content of ``resume_file`` when the caller has read it already (with
        ``map_location=self.device``), so it is not read twice."""
        if checkpoint is None:
            resume_file = checkpoints.resume_source(resume_file)
            checkpoint = load_checkpoint(resume_file, map_location=self.device)
        checkpoints.check_belongs(checkpoint, self.config, self.split_fingerprint, resume_file)
        changed = checkpoints.check_same_settings(checkpoint, self.config, resume_file)
        checkpoints.load_weights(self.model, checkpoint, resume_file)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("scheduler") is not None and hasattr(getattr(self, "scheduler", None), "load_state_dict"):
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        # The best checkpoint is found by content (renamed pairs still pair); before it exists (no evaluation yet) it
        # keeps its recorded name, so the next improvement writes it there and the every-epoch checkpoint keeps
        # overwriting the file resumed from.
        best_file = checkpoints.partner(resume_file, checkpoint) if checkpoints.role(checkpoint) == checkpoints.LAST \
            else resume_file
        if best_file is None and checkpoint.get("best_file"):
            best_file = os.path.join(os.path.dirname(resume_file), checkpoint["best_file"])
        self.saved_model_file = str(best_file or resume_file)
        if checkpoints.role(checkpoint) == checkpoints.LAST:
            self._last_file = str(resume_file)
        if checkpoint.get("run_id"):  # the continued run keeps its id (and so its pair)
            self.run_id = checkpoint["run_id"]
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint.get("best_valid_result")
        self.valid_history = [(int(e), float(s), dict(r)) for e, s, r in checkpoint.get("valid_history") or []]
        self.train_loss_dict = {int(e): v for e, v in (checkpoint.get("train_loss") or {}).items()}
        self._epoch_idx = checkpoint["epoch"]
        self.resumed_from_epoch = int(checkpoint["epoch"])
        self.train_time_before_s = float(checkpoint.get("train_time_s") or 0.0)
        self._pending_rng = checkpoint.get("rng")
        # A run that stopped early stays stopped; one that ran out of epochs continues when given more (--epochs).
        planned = (checkpoint.get("settings") or {}).get("epochs")  # absent in checkpoints of older versions
        ran_out = planned is not None and self.start_epoch >= int(planned)
        self._finished = (bool(checkpoint.get("finished")) and not ran_out) or self.start_epoch >= self.epochs
        self.logger.info(f"Checkpoint {resume_file} loaded; resuming from epoch {self.start_epoch}")
        if changed:
            self.logger.warning(f"resuming with settings changed on purpose: {'; '.join(changed)}")

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_data, self._save_last = train_data, saved
        if self._pending_rng is not None:  # exactly the random streams the interrupted run had at this point
            checkpoints.restore_rng_state(self._pending_rng, getattr(train_data, "generator", None))
            self._pending_rng = None
        if self._finished:  # nothing left to train; RecBole's fit would overwrite the best checkpoint
            self.eval_collector.data_collect(train_data)  # as fit() would, for metrics that need train counts
            return self.best_valid_score, self.best_valid_result
        extra = {} if callback_fn is None else {"callback_fn": callback_fn}  # not every RecBole trainer takes it
        self._fit_started = time.perf_counter()
        result = super().fit(train_data, valid_data, verbose=verbose, saved=saved, show_progress=show_progress,
                             **extra)
        self.train_time_before_s, self._fit_started = self.train_time_s(), None  # training is over: the clock stops
        self._save_last_checkpoint(self._epoch_idx, finished=True)
        return result

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_checkpoint(checkpoint_file, map_location=self.device)
            checkpoints.load_weights(self.model, checkpoint, checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        if getattr(eval_data, "cold_items", None) is not None:  # eval_protocol: cold_items (data/cold_items.py)
            self.model.eval()
            return cold_eval.evaluate(self.model, eval_data, self.config)
        # The parent's own (unsafe) load is skipped: the weights are already in place.
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    # -- logging and callbacks ----------------------------------------------------------------------------
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if epoch_idx > self.start_epoch:
            # The previous epoch is over (validation and early-stopping update included) and nothing has drawn
            # from the RNGs since: its state is exactly what a resumed run needs.
            self._save_last_checkpoint(epoch_idx - 1)
        self._epoch_idx = epoch_idx
        if hasattr(self.model, "start_training_epoch"):  # the plugin models' per-epoch hook (zoo models lack it)
            self.model.start_training_epoch()
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

