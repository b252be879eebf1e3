"""Side-by-side comparisons and their reports: run records, tables, significance tests, plots, t-SNE.

Entry point: ``python run_compare.py`` (:mod:`recbole_darec.report.cli`); docs: ``docs/compare.md``.
"""
from recbole_darec.report.compare import CompareOptions, run_comparison, write_report
from recbole_darec.report.records import append_record, model_kind, read_records
from recbole_darec.report.stats import Summary, paired_pvalue, summarize
from recbole_darec.report.tables import to_latex, to_markdown, write_tables
from recbole_darec.report.errors import CompareError

__all__ = [
    "CompareError", "CompareOptions", "Summary", "append_record", "model_kind", "paired_pvalue", "read_records",
    "run_comparison", "summarize", "to_latex", "to_markdown", "write_report", "write_tables",
]
