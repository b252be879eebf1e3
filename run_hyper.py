"""Ray Tune hyperparameter sweeps, RecBole-style; see ``python run_hyper.py --help`` and README "Sweeps".

    python run_hyper.py --model=DaRecLightGCN --dataset=ml-100k --space=hyper/darec.yaml [--num-samples N]
        [--gpus-per-trial 0.25] [--cpus-per-trial 1] [--max-concurrent N] [--scheduler asha|fifo]
        [--search random|grid|optuna] [--address auto|HOST:PORT] [--resume] [--name EXP] [--storage-path DIR]
        [--max-failures N] [--config_files "a.yaml b.yaml"] [--key=value ...]
"""
import sys

from recbole_darec.cli_errors import run_cli
from recbole_darec.tune.cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main, "run_hyper.py"))  # user errors: one line, exit 2; --debug shows the traceback
