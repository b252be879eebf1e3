"""README.md's results table is generated from the committed comparison records: a hand edit, or records that
changed without regenerating it, fail here (`python docs/make_readme_results.py --write` fixes it)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("make_readme_results", ROOT / "docs" / "make_readme_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_results_match_the_committed_records():
    generator = _generator()
    in_readme = generator.readme_block((ROOT / "README.md").read_text(encoding="utf-8"))
    assert in_readme is not None, "README.md lost the generated results markers"
    assert in_readme == generator.block(), "README.md's results differ from the records: run docs/make_readme_results.py --write"


def test_the_table_has_a_row_per_committed_comparison():
    generator = _generator()
    table = generator.results_table()
    for dataset, condition, folder in generator.ROWS:
        if (ROOT / "docs" / folder / "runs.jsonl").is_file():
            assert f"| {dataset} | {condition} |" in table


def test_readme_fits_on_a_screen_or_two():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 180
