"""Side-by-side comparison of models on one dataset over several seeds -> tables, bar chart, curves, t-SNE.

    python run_compare.py --dataset=ml-100k --models=BPR,LightGCN,DaRecLightGCN --seeds=3

See docs/compare.md for every flag, the output folder and how resuming works.
"""
import sys

from recbole_darec.cli_errors import run_cli
from recbole_darec.report.cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main, "run_compare.py"))  # user errors: one line, exit 2; --debug shows the traceback
