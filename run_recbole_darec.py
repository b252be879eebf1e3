"""Train and evaluate a model, RecBole-style.

    python run_recbole_darec.py --model=DaRecLightGCN --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]

Any ``--key=value`` is a config override (RecBole's command-line convention), e.g. ``--epochs=20 --learning_rate=0.002``.
Published settings for the RLMRec splits (yelp, amazon-book), per model:
``--config_files=configs/rlmrec/<Model>-<dataset>.yaml`` (README, "Published hyperparameters").
A mistake in the input (unknown key, bad value, missing or broken file) ends with one line naming it and exit
status 2; ``--debug`` (or ``RECBOLE_DAREC_DEBUG=1``) shows the traceback instead.
"""
import argparse
import sys

from recbole_darec import run_recbole_darec
from recbole_darec.cli_errors import run_cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", type=str, default="LightGCNBackbone", help="model name")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated YAML config files")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error")
    args, _ = parser.parse_known_args(argv)  # the rest (--key=value) is read by the Config, as in RecBole
    config_files = args.config_files.strip().split(" ") if args.config_files else None
    run_recbole_darec(model=args.model, dataset=args.dataset, config_file_list=config_files)


if __name__ == "__main__":
    sys.exit(run_cli(main, "run_recbole_darec.py"))
