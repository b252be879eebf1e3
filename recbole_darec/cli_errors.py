"""One behaviour for user errors in every command line (training, sweeps, comparisons, the semantic builder).

A user error -- a bad key or value, a missing or broken file, a checkpoint that does not belong to the run -- ends
the command with ONE line on stderr (``<prog>: error: <what, which file/key/value, what to do>``) and exit status
2, before anything is written. ``--debug`` on the command line or ``RECBOLE_DAREC_DEBUG=1`` in the environment
shows the full traceback instead. Anything else (a bug) keeps its traceback.
"""
import os
import sys

import yaml

DEBUG_FLAG = "--debug"
DEBUG_ENV = "RECBOLE_DAREC_DEBUG"
EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A mistake in the user's input; its message says what is wrong and how to fix it (one line)."""


def user_error_types():
    """Exception types that are always the user's input: :class:`UserError` (every plugin layer's own error types
    derive from it, so this ground floor imports nothing above it) and errors of other libraries' layers."""
    # FileNotFoundError: a missing dataset, config or checkpoint file (its message names the path); YAMLError: a
    # YAML file read from an open file (its message names the file and line).
    return (UserError, FileNotFoundError, yaml.YAMLError)


def pop_debug_flag(argv):
    """``argv`` without ``--debug`` / ``--debug=True``, and whether debugging was asked for (flag or env)."""
    wanted = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    rest = []
    for arg in argv:
        if arg == DEBUG_FLAG or arg.lower() in (f"{DEBUG_FLAG}=true", f"{DEBUG_FLAG}=1"):
            wanted = True
        elif arg.lower() in (f"{DEBUG_FLAG}=false", f"{DEBUG_FLAG}=0"):
            continue
        else:
            rest.append(arg)
    return rest, wanted


def listing(values, most=5):
    """``'a, b, c, d, e and 3 more'``: at most ``most`` values named, for messages about many ids or keys."""
    values = [str(v) for v in values]
    more = f" and {len(values) - most} more" if len(values) > most else ""
    return ", ".join(values[:most]) + more


def one_line(err):
    """The message of an error as one line (RecBole's KeyError repr quotes, multi-line hints joined)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines) or type(err).__name__


def run_cli(main, prog, argv=None):
    """Run ``main(argv)`` (argv without ``--debug``); user errors become one line and exit status 2.

    Returns the exit status for ``sys.exit``.
    """
    argv, debug = pop_debug_flag(sys.argv[1:] if argv is None else list(argv))
    saved_argv = sys.argv
    sys.argv = sys.argv[:1] + argv  # RecBole's Config reads sys.argv itself: it must not see --debug either
    try:
        status = main(argv)
    except user_error_types() as err:
        if debug:
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        sys.argv = saved_argv
    return 0 if status is None else status
