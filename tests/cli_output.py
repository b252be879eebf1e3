"""Reading what a CLI run printed (imported by test_resume / test_run_files)."""


def result_table(stdout):
    """The closing valid/test table of run_recbole_darec.py: {metric: (valid, test)}."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and "@" in parts[0]:
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    return rows
