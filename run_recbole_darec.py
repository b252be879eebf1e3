"""Train and evaluate a model, RecBole-style.

    python run_recbole_darec.py --model=DaRecLightGCN --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]

Any ``--key=value`` is a config override (RecBole's command-line convention), e.g. ``--epochs=20 --learning_rate=0.002``.
"""
import argparse

from recbole_darec import run_recbole_darec


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", type=str, default="LightGCNBackbone", help="model name")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated YAML config files")
    args, _ = parser.parse_known_args()  # the rest (--key=value) is read by the Config, as in RecBole
    config_files = args.config_files.strip().split(" ") if args.config_files else None
    run_recbole_darec(model=args.model, dataset=args.dataset, config_file_list=config_files)


if __name__ == "__main__":
    main()
