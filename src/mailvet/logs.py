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


class LibraryChatter(logging.Filter):
    """Demote aio-pika's and aiormq's account of a lost connection to debug: the bus logs
    one line of its own instead (mailvet.adapters.bus.rabbit). Kept as they are: their other
    errors and the broker's flow-control notices; other loggers' records are not touched.

    A filter of a handler (RootHandler has one): it sees the records of every aio_pika.* and
    aiormq.* logger, those created after it too. The handler has checked the record's level
    before its filters run, so a record demoted below `floor` (the handler's level) is
    dropped here."""

    LIBRARIES = ("aio_pika", "aiormq")

    def __init__(self, floor: int = logging.NOTSET) -> None:
        super().__init__()
        self.floor = floor

    KEEP = ("was blocked by", "was unblocked")
    # errors that only tell the connection went away (the broker closed it, a reconnection
    # attempt failed, a channel's close handler found no connection any more)
    GONE = (
        'Unexpected connection close from remote "%s", '
        "Connection.Close(reply_code=%r, reply_text=%r)",
        "error when creating transport: %r",
    )
    CALLBACK_ERROR = "Callback %r error: %s: %s"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in self.LIBRARIES:
            return True
        message = str(record.msg)
        if record.levelno >= logging.ERROR:
            if message not in self.GONE and not self._closing_callback(message, record.args):
                return True
        elif any(keep in message for keep in self.KEEP):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.floor <= logging.DEBUG

    def _closing_callback(self, message: str, args: object) -> bool:
        if message != self.CALLBACK_ERROR or not isinstance(args, tuple) or len(args) != 3:
            return False
        callback, _, error = args
        return "RobustChannel._on_close" in repr(callback) or str(error).endswith("closed")


class RootHandler(logging.Handler):
    """The root logger's handler: standard-library records rendered like structlog's own
    lines (level, logger name, ISO timestamp, the traceback inside the line) on whatever
    sys.stderr is now, aio-pika's and aiormq's reconnection chatter demoted (LibraryChatter).
    structlog is imported at the first record, not before."""

    def __init__(self, level: int, json: bool) -> None:
        super().__init__(level)
        self.json = json
        self.addFilter(LibraryChatter(floor=level))

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
