"""The text-conditions figure and table (``python -m recbole_darec.report.conditions``), on hand-written records
(made-up numbers, not results) whose paired differences are computed by hand."""
import json
import math

import pytest

from recbole_darec.report.conditions import condition_cells, main
from recbole_darec.report.stats import BETTER, WORSE, significance_marker


def _write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "runs.jsonl").open("w") as handle:
        for model, seed, recall in rows:
            handle.write(json.dumps({"model": model, "seed": seed, "dataset": "x",
                                     "test": {"recall@20": recall, "ndcg@20": recall / 2}}) + "\n")


def test_cells_are_the_paired_differences_over_shared_seeds():
    records = [{"model": m, "seed": s, "test": {"recall@20": v}} for m, s, v in [
        ("LightGCNBackbone", 1, 0.10), ("LightGCNBackbone", 2, 0.20), ("LightGCNBackbone", 3, 0.30),
        ("DaRec", 1, 0.11), ("DaRec", 2, 0.20), ("DaRec", 4, 0.90)]]  # seed 4 has no pair, seed 3 no DaRec
    cell = condition_cells(records, "LightGCNBackbone", ["DaRec"], ["recall@20"])["DaRec"]["recall@20"]
    assert cell.n == 2 and cell.better == 1
    assert cell.baseline_mean == pytest.approx(0.15) and cell.mean == pytest.approx(0.155)
    assert cell.pct == pytest.approx(100 * 0.005 / 0.15)
    # t(0.975, 1) * sd([0.01, 0]) / sqrt(2), in % of 0.15
    assert cell.half_width_pct == pytest.approx(12.7062047 * math.sqrt(0.00005) / math.sqrt(2) * 100 / 0.15, rel=1e-6)


def test_markers_come_from_one_rule():
    """The comparison tables (Summary.marker) and README's generated table use significance_marker."""
    assert significance_marker(0.01, 2.0, 0.05) == BETTER and significance_marker(0.01, -2.0, 0.05) == WORSE
    assert significance_marker(0.05, 2.0, 0.05) == "" and significance_marker(math.nan, 2.0, 0.05) == ""
    assert significance_marker(0.01, 0.0, 0.05) == WORSE  # not better is worse, as the tables always said


def test_cli_writes_figure_and_table_per_condition(tmp_path, capsys):
    base = [("LightGCNBackbone", s, 0.10 + 0.01 * s) for s in range(3)]
    _write(tmp_path / "real", base + [("DaRec", s, 0.12 + 0.01 * s) for s in range(3)])
    _write(tmp_path / "permuted", base + [("DaRec", s, 0.10 + 0.01 * s) for s in range(3)])
    stem = tmp_path / "conditions"
    assert main(["--models=DaRec", f"--out={stem}", f"real={tmp_path / 'real'}",
                 f"permuted={tmp_path / 'permuted'}"]) == 0
    assert (tmp_path / "conditions.png").stat().st_size > 0 and (tmp_path / "conditions.pdf").is_file()
    table = (tmp_path / "conditions.md").read_text()
    assert "| real | DaRec | 3 | 0.1300 ± 0.0100 | +18.2 %" in table and "3/3" in table
    assert "| permuted | DaRec | 3 | 0.1100 ± 0.0100 | +0.0 %" in table and "0/3" in table


def test_a_folder_without_the_baseline_is_one_line(tmp_path):
    _write(tmp_path / "real", [("DaRec", 0, 0.1)])
    with pytest.raises(Exception, match="no run of the baseline LightGCNBackbone"):
        main(["--models=DaRec", f"--out={tmp_path / 'c'}", f"real={tmp_path / 'real'}"])
    assert not (tmp_path / "c.png").exists()
