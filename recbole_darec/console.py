"""What a training run shows on the console before its model exists.

RecBole's ``init_logger`` gives the root logger a console handler and a log-file handler. The config dump goes to
the log file only (``extra=FILE_ONLY``); the console's INFO lines from before the model is built (data summary,
the loaders' settings) are held back and shown once it is built. A check that needs the loaded dataset (bad
embedding files, a value the model refuses, DaRec's K against the batch) then ends with its one line alone.
Warnings and errors are never held.
"""
import contextlib
import logging
import sys

from recbole_darec.cli_errors import UserError

FILE_ONLY = {"file_only": True}  # ``logger.info(msg, extra=FILE_ONLY)``: the log file, never the console


class _Gate(logging.Filter):
    def __init__(self, handler):
        super().__init__()
        self.handler, self.held, self.holding = handler, [], True

    def filter(self, record):
        if getattr(record, "file_only", False):
            return False
        if self.holding and record.levelno < logging.WARNING:
            self.held.append(record)  # it already passed the handler's level
            return False
        return True

    def release(self):
        self.holding = False
        held, self.held = self.held, []
        for record in held:
            self.handler.handle(record)


def _console_handlers():
    """RecBole's console handler (a plain StreamHandler on stderr/stdout); pytest's or an application's own
    handlers are left alone."""
    return [h for h in logging.getLogger().handlers
            if type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout)]


@contextlib.contextmanager
def console_held_until_built():
    """Yield ``release()``: call it once the model is built. A user error before that drops what was held (its
    one line says it all); any other exception shows it, before the traceback."""
    gates = [_Gate(h) for h in _console_handlers()]
    for gate in gates:
        gate.handler.addFilter(gate)

    def release():
        for gate in gates:
            gate.release()

    try:
        yield release
    except (UserError, FileNotFoundError):
        raise
    except BaseException:
        release()
        raise
    else:
        release()
    finally:
        for gate in gates:
            gate.handler.removeFilter(gate)
