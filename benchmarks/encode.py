"""Encoding throughput and memory of the LLM side on ml-100k (all 943 user + 1682 item profiles).

    python benchmarks/encode.py [--device=cpu|cuda] [--batch_size=64] [--encoder=NAME_OR_PATH]

Works on a temporary copy of the dataset (the shipped folder is not touched). Prints the machine and versions,
then: cold build time (profiles from side information + split replay, encoder load, encoding, atomic writes),
texts/second of the encoder itself per side, peak resident memory of the process (ru_maxrss) and, on CUDA, peak
allocated GPU memory; and the time of a second, cached run (no encoding).
"""
import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402

from recbole_darec import Config  # noqa: E402
from recbole_darec.config import DATASET_DIR  # noqa: E402
from recbole_darec.semantic import TextEncoder, ensure_semantic_embeddings  # noqa: E402


class TimedEncoder:
    """Delegates to a TextEncoder and records the wall time and count of every ``encode`` call."""

    def __init__(self, inner):
        self.inner, self.identity, self.dim, self.calls = inner, inner.identity, inner.dim, []

    def encode(self, texts, show_progress=True, desc=""):
        if self.inner.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = self.inner.encode(texts, show_progress=False, desc=desc)
        if self.inner.device.type == "cuda":
            torch.cuda.synchronize()
        self.calls.append((desc, len(texts), time.perf_counter() - start))
        return out


def peak_rss_mib():
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--encoder", default=None)
    args = parser.parse_args(sys.argv[1:])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv itself

    print(f"machine: {platform.platform()}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}")
    print(f"versions: torch {torch.__version__}, transformers {transformers.__version__}")
    if args.device.startswith("cuda"):
        print(f"gpu: {torch.cuda.get_device_name(args.device)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    try:
        shutil.copytree(DATASET_DIR / "ml-100k", tmp / "ml-100k")
        config = Config(model="BPR", dataset="ml-100k", config_dict={"data_path": str(tmp)})
        rss_before = peak_rss_mib()
        start = time.perf_counter()
        inner = TextEncoder(args.encoder, args.device, args.batch_size)
        load_s = time.perf_counter() - start
        enc = TimedEncoder(inner)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        ensure_semantic_embeddings(config, encoder=enc)
        cold_s = time.perf_counter() - start
        print(f"encoder: {inner.identity['encoder']}, dim {inner.dim}, max_length {inner.max_length}, "
              f"batch {args.batch_size}, device {args.device}; load {load_s:.2f} s")
        total_n = total_t = 0
        for desc, n, secs in enc.calls:
            print(f"  {desc:<16} {n:5d} texts  {secs:7.2f} s  {n / secs:8.1f} texts/s")
            total_n, total_t = total_n + n, total_t + secs
        print(f"encode all: {total_n} texts in {total_t:.2f} s = {total_n / total_t:.1f} texts/s")
        print(f"cold build (profiles + split replay + encode + write): {cold_s:.2f} s")
        print(f"peak RSS: {peak_rss_mib():.0f} MiB (before the encoder: {rss_before:.0f} MiB)")
        if args.device.startswith("cuda"):
            print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
        config = Config(model="BPR", dataset="ml-100k", config_dict={"data_path": str(tmp)})
        start = time.perf_counter()
        result = ensure_semantic_embeddings(config, encoder=enc)
        cached_s = time.perf_counter() - start
        assert not any(r["rebuilt"] for r in result.values()), "cached run re-encoded"
        print(f"cached re-run (no encoding; texts rebuilt and hashed): {cached_s:.2f} s "
              f"({cold_s / cached_s:.1f}x faster than cold)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
