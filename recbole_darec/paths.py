"""Where the plugin's own files live: a leaf every layer may import (it imports nothing of the plugin)."""
from pathlib import Path

import recbole

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROPERTIES_DIR = PROJECT_ROOT / "properties"  # plugin defaults: overall.yaml, model/<Model>.yaml
DATASET_CONFIG_DIR = PROJECT_ROOT / "dataset_configs"  # dataset_configs/<dataset>.yaml
RECBOLE_PROPERTIES_DIR = Path(recbole.__file__).resolve().parent / "properties"
DATASET_DIR = PROJECT_ROOT / "dataset"  # data the project may ship (ml-100k)
CACHE_DIR = PROJECT_ROOT / ".cache" / "datasets"  # datasets converted from original files beside the checkout
