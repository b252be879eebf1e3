"""Tables written as text: the CLI's valid/test table and the one GitHub-Markdown writer (sweeps, comparisons)."""


def format_result_table(valid_result, test_result):
    """A plain-text table with one row per metric and the best-valid / test columns."""
    metrics = list(test_result or valid_result or {})
    width = max([len(m) for m in metrics] + [6])
    lines = [f"{'metric':<{width}}  {'valid':>8}  {'test':>8}", f"{'-' * width}  {'-' * 8}  {'-' * 8}"]
    for metric in metrics:
        valid = (valid_result or {}).get(metric, float("nan"))
        test = (test_result or {}).get(metric, float("nan"))
        lines.append(f"{metric:<{width}}  {valid:>8.4f}  {test:>8.4f}")
    return "\n".join(lines)


def markdown_table(header, rows, right_from=None):
    """GitHub-flavoured Markdown table lines (cells already text); columns from index ``right_from`` on are
    right-aligned."""
    rule = ["---:" if right_from is not None and i >= right_from else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
