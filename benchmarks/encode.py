"""Encoding throughput of the LLM side: TextEncoder (token-length buckets; oneDNN Linear kernels on CPU) vs the
previous path, and per-text reuse when a few profiles change.

    python benchmarks/encode.py [--device=cpu|cuda] [--dtype=float32|float16|bfloat16] [--threads=N]
        [--batch_size=64] [--encoder=NAME_OR_PATH] [--repeats=2] [--amazon_sample=800]

Works on a temporary copy of ml-100k (the shipped folder is not touched). Prints the machine and versions, then:
1. the cold build (profiles + split replay, encoder load, encoding, atomic writes), peak RSS, a cached re-run;
2. texts/s of the previous path (texts sorted by characters, ``batch_size`` a batch, tokenised per batch, torch's
   default Linear kernel; float32), of the bucketed path on that kernel (CPU only) and of ``TextEncoder.encode``
   (``--dtype``), timed alternately in this process for ``--repeats`` rounds on ml-100k's users and items and on
   a random sample of amazon-scientific's users (when its source data is there): wall and CPU texts/s, the ratio
   to the previous path and the max abs difference of the vectors. CPU seconds count this process only, so they
   move less with other jobs' load (for 1 thread: OMP_NUM_THREADS=1 ... --threads=1);
3. per-text reuse: 10 % of the user profiles changed -> texts encoded and seconds, vs a full encode of the same
   texts, and the max abs difference of the two matrices; and how many profiles another seed changes.
"""
import argparse
import json
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from common import environment_header, sync

from recbole_darec.config import isolated_config  # leaves this script's own argv alone
from recbole_darec.paths import DATASET_DIR
from recbole_darec.semantic import TextEncoder, ensure_semantic_embeddings, generate_profile_texts
from recbole_darec.semantic.encoder import _OneDNNLinear
from recbole_darec.semantic.files import read_embedding_file


class TimedEncoder:
    """Delegates to a TextEncoder and records the texts, wall time and description of every ``encode`` call."""

    def __init__(self, inner):
        self.inner, self.identity, self.dim, self.calls = inner, inner.identity, inner.dim, []

    def encode(self, texts, show_progress=True, desc=""):
        sync(self.inner.device)
        start = time.perf_counter()
        out = self.inner.encode(texts, show_progress=False, desc=desc)
        sync(self.inner.device)
        self.calls.append((desc, len(texts), time.perf_counter() - start))
        return out


@torch.inference_mode()
def previous_encode(enc, texts, batch_size):
    """TextEncoder.encode before length bucketing: longest by characters first, ``batch_size`` texts a batch,
    each batch tokenised with padding to its longest text."""
    out = np.zeros((len(texts), enc.dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        batch = enc.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=enc.max_length,
                              return_tensors="pt").to(enc.device)
        hidden = enc.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out[idx] = F.normalize(pooled.float(), p=2, dim=1).cpu().numpy()
    return out


def peak_rss_mib():
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stock_linears(enc):
    """Put the encoder's Linear layers back on torch's default CPU kernel (MKL), as the previous path ran them."""
    for module in enc.model.modules():
        if type(module) is _OneDNNLinear:
            module.__class__ = torch.nn.Linear
    return enc


def compare(name, texts, old_enc, enc, args):
    """The previous path, the bucketed path on torch's default GEMM (CPU only) and TextEncoder.encode, timed
    alternately for ``args.repeats`` rounds; texts/s, ratio to the previous path and max abs difference."""
    paths = {"previous path": lambda: previous_encode(old_enc, texts, args.batch_size),
             "bucketed, default GEMM": lambda: old_enc.encode(texts, show_progress=False),
             "TextEncoder.encode": lambda: enc.encode(texts, show_progress=False)}
    if enc.device.type != "cpu":  # no oneDNN swap there: the middle path is TextEncoder.encode in float32
        del paths["bucketed, default GEMM"]
    times, outs = {path: [] for path in paths}, {}
    for _ in range(args.repeats):
        for path, fn in paths.items():
            sync(args.device)
            wall, cpu = time.perf_counter(), time.process_time()
            outs[path] = fn()
            sync(args.device)
            times[path].append((time.perf_counter() - wall, time.process_time() - cpu))
    lengths = [len(ids) for ids in enc.tokenizer(texts, truncation=True, max_length=enc.max_length)["input_ids"]]
    print(f"{name}: {len(texts)} texts, {min(lengths)}-{max(lengths)} tokens (mean {np.mean(lengths):.0f}, after "
          f"truncation at {enc.max_length}); in brackets the ratio to the previous path (median: per round)")
    base = times["previous path"]
    for path, own in times.items():
        cols = []
        for k, clock in ((0, "wall"), (1, "CPU")):
            ratios = [b[k] / t[k] for b, t in zip(base, own)]
            cols.append(f"{len(texts) / statistics.median(t[k] for t in own):6.1f} texts/s {clock} "
                        f"({statistics.median(ratios):.2f}x: {' '.join(f'{r:.2f}' for r in ratios)})")
        diff = float(np.abs(outs[path] - outs["previous path"]).max())
        print(f"  {path:<22} {cols[0]} | {cols[1]} | max abs diff {diff:.1e}")


def amazon_user_texts(sample, seed=0):
    """A random sample of amazon-scientific's generated user profiles, or ``None`` (with the reason printed)."""
    try:
        config = isolated_config(model="BPR", dataset="amazon-scientific", config_dict={"state": "WARNING"})
        texts = generate_profile_texts(config, ["user"])[0]["user"]
    except Exception as exc:  # the source data is third-party and may be absent
        print(f"amazon-scientific: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        return None
    texts = [texts[t] for t in sorted(texts)]
    pick = np.random.default_rng(seed).choice(len(texts), min(sample, len(texts)), replace=False)
    return [texts[i] for i in sorted(pick)]


def reuse_effect(tmp, enc):
    """10 % of the user profiles changed (written as a profile file): the rebuild's encoded texts and seconds vs a
    full encode of the same texts, and the max abs difference of the two matrices."""
    folder = tmp / "ml-100k"
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (folder / "ml-100k.generated.userprofile.jsonl").read_text().splitlines()}
    changed = set(np.random.default_rng(0).choice(sorted(texts), len(texts) // 10, replace=False).tolist())
    for uid in changed:  # as one more training interaction would
        texts[uid] = texts[uid].replace("Recently watched: ", "Recently watched: Toy Story (1995); ")
    with open(folder / "ml-100k.userprofile.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"id": uid, "text": text}) + "\n" for uid, text in texts.items())
    timed = TimedEncoder(enc)
    config = isolated_config(model="BPR", dataset="ml-100k", config_dict={"data_path": str(tmp), "state": "WARNING",
                                                                   "semantic_show_progress": False})
    start = time.perf_counter()
    result = ensure_semantic_embeddings(config, encoder=timed)["user"]
    build_s = time.perf_counter() - start
    encoded, encode_s = sum(n for _, n, _ in timed.calls), sum(s for *_, s in timed.calls)
    tokens, matrix = read_embedding_file(result["path"], "user")
    sync(enc.device)
    start = time.perf_counter()
    full = enc.encode([texts[t] for t in tokens], show_progress=False)
    sync(enc.device)
    full_s = time.perf_counter() - start
    print(f"  {len(changed)} of {len(texts)} profiles changed: rebuild encoded {encoded} texts "
          f"({result.get('reused', 0)} reused) in {encode_s:.2f} s, whole build {build_s:.2f} s; a full encode of "
          f"the same texts {full_s:.2f} s "
          f"({full_s / build_s:.1f}x the whole rebuild); max abs difference {float(np.abs(matrix - full).max()):.2e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="the bucketed path's; the previous path is float32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--amazon_sample", type=int, default=800, help="amazon-scientific users timed (0: none)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(environment_header())
    print(f"transformers {transformers.__version__}")
    if args.device.startswith("cuda"):
        print(f"gpu: {torch.cuda.get_device_name(args.device)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    try:
        folder = tmp / "ml-100k"
        folder.mkdir()
        for suffix in ("inter", "item", "user"):  # the sources only, not a build the repo copy may hold
            shutil.copyfile(DATASET_DIR / "ml-100k" / f"ml-100k.{suffix}", folder / f"ml-100k.{suffix}")
        config = isolated_config(model="BPR", dataset="ml-100k",
                                 config_dict={"data_path": str(tmp), "state": "WARNING"})
        rss_before = peak_rss_mib()
        start = time.perf_counter()
        enc = TextEncoder(args.encoder, args.device, args.batch_size, dtype=args.dtype)
        load_s = time.perf_counter() - start
        old_enc = stock_linears(TextEncoder(args.encoder, args.device, args.batch_size))  # float32
        timed = TimedEncoder(enc)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        ensure_semantic_embeddings(config, encoder=timed)
        cold_s = time.perf_counter() - start
        print(f"encoder: {enc.identity['encoder']}, dim {enc.dim}, max_length {enc.max_length}, batch "
              f"{args.batch_size}, device {args.device}, dtype {args.dtype}, torch threads {torch.get_num_threads()}; "
              f"load {load_s:.2f} s")
        print("1. cold build")
        for desc, n, secs in timed.calls:
            print(f"  {desc:<16} {n:5d} texts  {secs:7.2f} s  {n / secs:8.1f} texts/s")
        print(f"  cold build (profiles + split replay + encode + write): {cold_s:.2f} s; peak RSS "
              f"{peak_rss_mib():.0f} MiB (before the encoder: {rss_before:.0f} MiB)")
        if args.device.startswith("cuda"):
            print(f"  peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
        start = time.perf_counter()
        result = ensure_semantic_embeddings(isolated_config(model="BPR", dataset="ml-100k",
                                                   config_dict={"data_path": str(tmp), "state": "WARNING"}),
                                            encoder=timed)
        assert not any(r["rebuilt"] for r in result.values()), "cached run re-encoded"
        print(f"  cached re-run (no encoding; texts rebuilt and hashed): {time.perf_counter() - start:.2f} s")

        print(f"2. previous path vs TextEncoder.encode ({args.repeats} alternating rounds)")
        for side in ("user", "item"):
            lines = (folder / f"ml-100k.generated.{side}profile.jsonl").read_text().splitlines()
            compare(f"ml-100k {side}s", [json.loads(line)["text"] for line in lines], old_enc, enc, args)
        amazon = amazon_user_texts(args.amazon_sample) if args.amazon_sample else None
        if amazon:
            compare(f"amazon-scientific users (random {len(amazon)})", amazon, old_enc, enc, args)

        print("3. per-text reuse on ml-100k users")
        reuse_effect(tmp, enc)
        other = isolated_config(model="BPR", dataset="ml-100k", config_dict={"data_path": str(tmp), "state": "WARNING",
                                                                      "seed": 2021})
        seed_texts = generate_profile_texts(other, ["user"])[0]["user"]
        base = {json.loads(line)["id"]: json.loads(line)["text"]
                for line in (folder / "ml-100k.generated.userprofile.jsonl").read_text().splitlines()}
        print(f"  seed 2021 vs 2020 (split RS 8/1/1): {sum(base[u] != t for u, t in seed_texts.items())} of "
              f"{len(base)} user profiles differ (the matrix cache covers going back to a seed already built)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
