"""Each compat fix: the breakage is real on this stack (shown in a clean subprocess) and the fix repairs it."""
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import recbole_darec  # noqa: F401  (applies the fixes)
from recbole_darec import compat


def run_clean(code):
    """Run ``code`` in a fresh interpreter that has NOT imported recbole_darec."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_numpy_aliases_needed_and_restored():
    broken = run_clean("from recbole.config import Config; Config(model='BPR', dataset='ml-100k')")
    assert broken.returncode != 0 and "float_" in broken.stderr
    # With the fix, RecBole's metrics (which use np.float at call time) compute a hand-checked NDCG.
    from recbole.evaluator.metrics import NDCG

    metric = NDCG({"topk": [2], "metric_decimal_place": 4})
    pos_index = np.array([[False, True]])
    pos_len = np.array([1])
    ndcg = metric.metric_info(pos_index, pos_len)
    assert ndcg[0, 1] == pytest.approx(1 / np.log2(3))


def test_dok_update_needed_and_restored():
    broken = run_clean("import scipy.sparse as sp; sp.dok_matrix((2, 2))._update({(0, 1): 1.0})")
    assert broken.returncode != 0 and "_update" in broken.stderr
    mat = sp.dok_matrix((2, 3), dtype=np.float32)
    mat._update({(0, 1): 1.0, (1, 2): 2.0})
    assert mat.toarray().tolist() == [[0, 1, 0], [0, 0, 2]]


def test_pandas_3_is_refused_with_a_clear_message(monkeypatch):
    import pandas as pd

    monkeypatch.setattr(pd, "__version__", "3.0.0")
    with pytest.raises(ImportError, match="pandas < 3"):
        compat._check_pandas()


def test_missing_float_values_are_filled(tmp_path, quick_config):
    """RecBole fills a missing float feature with the column mean: a silent no-op on pandas 3."""
    from recbole.data import create_dataset

    from recbole_darec import Config

    data = tmp_path / "tiny"
    data.mkdir()
    (data / "tiny.inter").write_text("user_id:token\titem_id:token\n1\t1\n1\t2\n2\t2\n2\t3\n")
    (data / "tiny.item").write_text("item_id:token\tprice:float\n1\t1.0\n2\t\n3\t3.0\n")
    config = Config(model="BPR", dataset="tiny", config_dict={
        **quick_config, "data_path": str(tmp_path), "normalize_all": False,
        "load_col": {"inter": ["user_id", "item_id"], "item": ["item_id", "price"]}})
    dataset = create_dataset(config)
    prices = dataset.item_feat["price"][1:].tolist()  # row 0 is [PAD]
    assert not any(np.isnan(prices))
    assert sorted(prices) == pytest.approx([1.0, 2.0, 3.0])


def test_plugin_never_imports_recbole_quick_start_or_ray():
    out = run_clean("import sys, recbole_darec; print('recbole.quick_start' in sys.modules, 'ray' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_checkpoint_loads_with_weights_only(tmp_path, quick_config):
    """torch >= 2.6 refuses RecBole's pickled Config; plugin checkpoints load with weights_only=True."""
    from recbole_darec import load_data_and_model, run_recbole_darec

    run_recbole_darec("BPR", "ml-100k", config_dict=quick_config)
    # the best checkpoint (the per-epoch "last" one for resuming sits beside it as <best>.last.pth)
    (checkpoint,) = [p for p in (tmp_path / "saved").glob("BPR-*.pth") if not p.name.endswith(".last.pth")]
    state = torch.load(checkpoint, weights_only=True)
    assert state["model"] == "BPR" and state["config"]["embedding_size"] == 32
    config, model, *_ = load_data_and_model(str(checkpoint))
    assert torch.equal(model.user_embedding.weight, state["state_dict"]["user_embedding.weight"])
    assert config["embedding_size"] == 32

