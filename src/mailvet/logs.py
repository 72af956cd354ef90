"""structlog set-up: key-value or JSON lines on stderr, with job ids and counts.

The libraries' own records (aio-pika, aiormq, uvicorn, anything on the standard `logging`
module) go through the same renderer: one handler on the root logger formats them with
structlog's ProcessorFormatter, so a service writes JSON lines only.

Addresses are never logged at info level; the engine logs them at debug at most.
structlog is imported when logging is configured, not with this module (it costs ~0.1 s,
most of it the rich tracebacks it loads): a command that logs nothing never imports it.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import structlog

# a configuration asked for with lazy=True while structlog was not imported yet
_pending: tuple[str, bool] | None = None


class _StderrLogger:
    """Writes each line to whatever sys.stderr is *now* (a stream captured at set-up time,
    e.g. by a test runner, may be closed by the time a later line is logged)."""

    def __init__(self, *_args: object) -> None:
        pass

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure_logging(level: str = "warning", json: bool = False, *, lazy: bool = False) -> None:
    """Log lines at `level` and above to stderr, as JSON lines or key=value text.

    `lazy`: if structlog is not imported yet, only remember the wish; `logger()` and
    `apply_pending()` carry it out (a command that may never log does not pay for it).
    """
    global _pending
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    _route_stdlib(numeric, json)
    if lazy and "structlog" not in sys.modules:
        _pending = (level, json)
        return
    _pending = None
    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _renderer(json),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=False,
    )


def _renderer(json: bool) -> structlog.typing.Processor:
    import structlog

    if json:
        return structlog.processors.JSONRenderer()
    # plain tracebacks: rich ones print local variables, which may hold addresses
    return structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback
    )


class RootHandler(logging.Handler):
    """The root logger's handler: standard-library records rendered like structlog's own
    lines (level, logger name, ISO timestamp, the traceback inside the line) on whatever
    sys.stderr is now. structlog is imported at the first record, not before."""

    def __init__(self, level: int, json: bool) -> None:
        super().__init__(level)
        self.json = json

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is None:
            import structlog

            pre_chain: list[structlog.typing.Processor] = [
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ]
            self.formatter = structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    _renderer(self.json),
                ],
                foreign_pre_chain=pre_chain,
            )
        return self.formatter.format(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            print(line, file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


# libraries' loggers whose info lines say nothing to an operator
QUIET = {"alembic.runtime.plugins": logging.WARNING}  # "setup plugin ..." at every migration


def _route_stdlib(level: int, json: bool) -> None:
    """Replace this module's root handler (if any) with one at `level`."""
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(level, quiet))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, RootHandler):
            root.removeHandler(handler)
    root.addHandler(RootHandler(level, json))
    root.setLevel(level)


def apply_pending() -> None:
    """Carry out a lazy configuration now if structlog has been imported since (by an
    adapter that logs through it directly)."""
    if _pending is not None and "structlog" in sys.modules:
        configure_logging(*_pending)


def logger(name: str) -> Any:
    """A structlog logger for code that logs rarely: structlog is imported, and a pending
    lazy configuration carried out, on the first call."""
    import structlog

    if _pending is not None:
        configure_logging(*_pending)
    return structlog.get_logger(name)
