"""Build (or check) a dataset's LLM-side embedding files.

Usage::

    python -m recbole_darec.semantic --dataset=ml-100k [--encoder=NAME_OR_PATH] [--device=cuda]
        [--batch_size=64] [--max_length=256] [--dtype=float32] [--model=BPR] [--config_files="a.yaml b.yaml"]
        [--force] [--key=value ...]

The split that user profiles are built from is the one a run with the same config gets, so pass the same
``--config_files`` / ``--key=value`` overrides (seed, eval_args, ...) you will train with; a run whose split
differs rebuilds the profiles itself. ``--model`` only selects which model YAML defaults apply.
"""
import argparse
import ast

from recbole_darec.cli_errors import UserError, run_cli
# Upward on purpose: this is a command (python -m recbole_darec.semantic), which builds the Config a run would
# build, so profiles are split as that run splits them; the package it sits in stays below the config.
from recbole_darec.config import isolated_config
from recbole_darec.data.atomic_check import check_atomic_headers
from recbole_darec.semantic.build import ensure_semantic_embeddings
# Upward on purpose: the command takes the dataset folder's lock as a run does, so the two never write the same
# files at once; the package it sits in stays below single_run.
from recbole_darec.single_run import dataset_build_lock


def _parse_value(text):
    """RecBole-style literal: numbers, booleans, None, lists; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv=None):
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m recbole_darec.semantic", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="dataset name, e.g. ml-100k")
    parser.add_argument("--encoder", default=None, help="HF model name or local folder (default: bundled MiniLM)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the config's device)")
    parser.add_argument("--batch_size", type=int, default=None, help="texts per forward pass (default 64)")
    parser.add_argument("--max_length", type=int, default=None, help="truncation in tokens (default: encoder's)")
    parser.add_argument("--dtype", default=None, help="float32 (default); float16 or bfloat16 on CUDA only")
    parser.add_argument("--model", default="BPR", help="model whose defaults shape the config (default BPR)")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files, as in run_recbole")
    parser.add_argument("--force", action="store_true", help="re-encode even when the cache is current")
    args, extra = parser.parse_known_args(argv)
    overrides = {}
    for item in extra:
        key, eq, value = item.lstrip("-").partition("=")
        if not item.startswith("--") or not eq:
            parser.error(f"unrecognised argument {item!r} (use --key=value)")
        overrides[key] = _parse_value(value)
    for key, value in (("semantic_encoder", args.encoder), ("semantic_device", args.device),
                       ("semantic_batch_size", args.batch_size), ("semantic_max_length", args.max_length),
                       ("semantic_dtype", args.dtype)):
        if value is not None:
            overrides[key] = value

    # The overrides were parsed above; RecBole must not parse sys.argv again.
    config = isolated_config(args.model, args.dataset, args.config_files.split() if args.config_files else None,
                             overrides)
    check_atomic_headers(config)
    try:
        # Writes under the dataset folder's lock, the one training runs hold while they load these files.
        with dataset_build_lock(config):
            result = ensure_semantic_embeddings(config, force=args.force)
    except (ValueError, FileNotFoundError) as exc:  # invalid or missing input files, named in the message
        raise UserError(str(exc)) from exc
    for side, info in result.items():
        state = "built" if info["rebuilt"] else "up to date"
        print(f"{info['path']}: {info['count']} {side}s x {info['dim']} ({info['source']}, {state})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, "python -m recbole_darec.semantic"))
