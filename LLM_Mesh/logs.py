"""Log output for ``registry serve`` and ``node start``: text or JSON lines, and the request line.

``--log-format text`` (default) keeps the usual ``time LEVEL logger: message`` lines;
``--log-format json`` (``LLM_MESH_LOG_FORMAT=json``) writes one JSON object per line
(:class:`JsonFormatter`: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, and
``exc`` with a traceback), uvicorn's own lines included (it is then given no logging
config of its own: :func:`uvicorn_log_kwargs`).

:func:`log_request` writes the one line per request (gateway and node): in text,
``request key=value ...`` (logfmt, values quoted when they hold spaces, quotes or ``=``);
in JSON, ``"msg": "request"`` and the fields at the top level. Callers pass ids,
numbers and bounded codes only: never a prompt, an output or an error message.
:func:`log_text` (what a peer chose, made printable and cut) is ``core/printable.py``'s,
re-exported here.

When the line would reach :func:`setup_logging`'s handler (:class:`MeshHandler`) and
nothing else (no filter on the request logger or the handler, one handler on the way up,
its formatter the project's own, the standard ``Logger`` class and record factory),
:func:`log_request` formats the line itself and writes it to that handler's stream, under
its lock, flushed, as ``StreamHandler.emit`` would: the same bytes, without a
``LogRecord`` and ``logging``'s format machinery (a measured share of the gateway's and
the node's CPU per request, docs/benchmarks.md). Any other configuration takes
``logging``'s general path. Nothing is held back: a line is on the stream's file when
:func:`log_request` returns, as before.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from LLM_Mesh.core.printable import log_text

__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
    "MeshHandler",
    "RequestLine",
    "TextFormatter",
    "exception_words",
    "log_request",
    "log_text",
    "safe_id",
    "setup_logging",
    "uvicorn_log_kwargs",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ATTR = "mesh_request"  # the LogRecord attribute holding a request line's fields


def safe_id(value: str | None, limit: int = 128) -> str | None:
    """An id fit for a log line: printable, at most ``limit`` characters; else ``None``."""
    if value and len(value) <= limit and value.isprintable():
        return value
    return None


_QUOTES = ("'", '"', "`")


def exception_words(exc: BaseException, limit: int = 300) -> str:
    """An exception's message for the log, without what it quotes: cut at its first quote
    mark (``'``, ``"``, a backquote), where a message names a value (llama-cpp-python's
    ``Failed to tokenize: text="<the whole prompt>"``, ``int()``'s "invalid literal ... 'x'",
    a ``KeyError``, pydantic's ``input_value='...'``), which on a request's path is the
    prompt or the output (docs/security.md, "Privacy"); then :func:`log_text`. A message
    without quotes (a model file's path, an address) is kept whole."""
    text = str(exc)
    cut = min((i for i in (text.find(q) for q in _QUOTES) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut].rstrip() + " [quoted text not logged]"
    return log_text(text, limit)


def _logfmt(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    text = str(value)
    # three ``in`` tests: a request line has ~14 values, a generator over them cost ~6 µs
    if not text or " " in text or '"' in text or "=" in text:
        return json.dumps(text, ensure_ascii=False)
    return text


def logfmt_text(fields: Mapping[str, Any]) -> str:
    """The logfmt text of a request line's fields (``None`` values left out)."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        kind = type(value)
        if kind is str:
            if not value or " " in value or '"' in value or "=" in value:
                value = json.dumps(value, ensure_ascii=False)
        elif kind is bool:
            value = "true" if value else "false"
        elif kind is not int and kind is not float:  # their text needs no quotes
            value = _logfmt(value)
        parts.append(f"{key}={value}")
    return " ".join(parts)


class RequestLine:
    """A request line's fields; ``str()`` is its logfmt text (rendered only if emitted)."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return logfmt_text(self.fields)


def _request_record(logger: logging.Logger, fields: Mapping[str, Any]) -> logging.LogRecord:
    return logger.makeRecord(
        logger.name, logging.INFO, "(unknown file)", 0, "request %s", (RequestLine(fields),),
        None, "(unknown function)", {REQUEST_ATTR: fields},
    )  # fmt: skip


def log_request(logger: logging.Logger, fields: Mapping[str, Any]) -> None:
    """One INFO line for one request (see the module docstring).

    What ``logger.info`` does, less its look-up of the calling source line (a walk up the
    stack per line; neither format here prints it): the record says ``(unknown file)``,
    line 0, as every record does when ``logging._srcfile`` is ``None``. Straight to
    :class:`MeshHandler`'s stream when that is the only place it goes (module docstring)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _only_handler(logger)
    if handler is None:
        logger.handle(_request_record(logger, fields))
        return
    # the handler's lock taken and the stream flushed as ``Handler.acquire``/``release`` and
    # ``StreamHandler.flush`` do, without their five Python calls (perf45; a ``Handler``
    # always has its lock: ``createLock`` in its ``__init__``)
    with handler.lock:  # type: ignore[union-attr]
        try:
            created, msecs = _record_time()
            formatter = handler.formatter
            level = logging.getLevelName(logging.INFO)
            if type(formatter) is JsonFormatter:
                line = formatter.request_line(created, msecs, level, logger.name, fields)
            else:  # a TextFormatter of TEXT_FORMAT (_only_handler)
                asctime = formatter.asctime(created, msecs)  # type: ignore[union-attr]
                line = f"{asctime} {level} {logger.name}: request {logfmt_text(fields)}"
            stream = handler.stream
            stream.write(line + handler.terminator)
            if stream and hasattr(stream, "flush"):  # StreamHandler.flush's own test
                stream.flush()
        except RecursionError:  # as StreamHandler.emit
            raise
        except Exception:
            handler.handleError(_request_record(logger, fields))


def _only_handler(logger: logging.Logger) -> MeshHandler | None:
    """The handler a record of ``logger`` would reach when that is :class:`MeshHandler`
    alone, as :func:`setup_logging` made it (module docstring); else ``None``."""
    if (
        logger.filters
        or type(logger) is not logging.Logger
        or logging.getLogRecordFactory() is not logging.LogRecord
    ):
        return None
    found: logging.Handler | None = None
    node: logging.Logger | None = logger
    while node is not None:  # the walk of Logger.callHandlers
        handlers = node.handlers
        if handlers:
            if found is not None or len(handlers) != 1:
                return None
            found = handlers[0]
        if not node.propagate:
            break
        node = node.parent
    if type(found) is not MeshHandler or found.filters or found.level > logging.INFO:
        return None
    formatter = found.formatter
    kind = type(formatter)
    if kind is JsonFormatter:
        return found
    if (
        kind is TextFormatter
        and formatter._fmt == TEXT_FORMAT  # type: ignore[union-attr]
        and formatter.datefmt is None  # type: ignore[union-attr]
        and type(formatter._style) is logging.PercentStyle  # type: ignore[union-attr]
    ):
        return found
    return None


class MeshHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """:func:`setup_logging`'s handler: a ``StreamHandler`` (stderr), its own type so that
    :func:`log_request` knows the handler and may write to its stream directly."""


# what ``json.dumps(obj, ensure_ascii=False, default=str)`` builds per call, made once
_JSON_LINE = json.JSONEncoder(ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def _ts(self, created: float, msecs: float) -> str:
        second = int(created)
        cached = self._second
        if cached[0] != second:  # the text of the second made once a second
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
            self._second = cached = (second, text)
        return f"{cached[1]}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": self._ts(record.created, record.msecs),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, REQUEST_ATTR, None)
        if isinstance(fields, Mapping):
            obj["msg"] = "request"
            for key, value in fields.items():
                if value is not None:
                    obj[key] = value
        else:
            obj["msg"] = record.getMessage()
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return _JSON_LINE.encode(obj)

    def request_line(
        self, created: float, msecs: float, level: str, name: str, fields: Mapping[str, Any]
    ) -> str:
        """:meth:`format` of a request line's record (``log_request``)."""
        obj: dict[str, Any] = {
            "ts": self._ts(created, msecs), "level": level, "logger": name,
            "msg": "request",
        }  # fmt: skip
        for key, value in fields.items():
            if value is not None:
                obj[key] = value
        return _JSON_LINE.encode(obj)


if sys.version_info >= (3, 13):

    def _record_time() -> tuple[float, float]:
        """``LogRecord``'s ``created`` and ``msecs`` for a record made now, as this
        Python's ``LogRecord.__init__`` makes them (3.13: from ``time.time_ns()``)."""
        ct = time.time_ns()
        created = ct / 1e9
        msecs = (ct % 1_000_000_000) // 1_000_000 + 0.0
        if msecs == 999.0 and int(created) != ct // 1_000_000_000:
            msecs = 0.0
        return created, msecs

else:

    def _record_time() -> tuple[float, float]:
        """``LogRecord``'s ``created`` and ``msecs`` for a record made now, as this
        Python's ``LogRecord.__init__`` makes them (before 3.13: from ``time.time()``)."""
        ct = time.time()
        return ct, int((ct - int(ct)) * 1000) + 0.0


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT` lines, exactly as ``logging.Formatter`` writes them, with the
    time's text made once a second (``time.strftime`` per record was a measured share of
    each request line's cost on the gateway and the node)."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.asctime(record.created, record.msecs)

    def asctime(self, created: float, msecs: float) -> str:
        """:meth:`formatTime` of a record's ``created`` and ``msecs`` (``log_request``)."""
        second = int(created)
        cached = self._second
        if cached[0] != second:
            text = time.strftime(self.default_time_format, self.converter(created))
            self._second = cached = (second, text)
        msec = self.default_msec_format
        return cached[1] if msec is None else msec % (cached[1], msecs)


def setup_logging(verbose: bool = False, fmt: str = "text") -> None:
    """The process's logging: INFO (DEBUG with ``verbose``) to stderr, text or JSON lines."""
    handler = MeshHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # one line per heartbeat is noise; the mesh's own loggers say what matters
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # alembic names each of its plugins as it loads them: seven lines at every start
    logging.getLogger("alembic.runtime.plugins").setLevel(
        logging.DEBUG if verbose else logging.WARNING
    )
    # and its migration context says its dialect at every start, each migration it runs with
    # its docstring's loose lines: the store logs one line of what it migrated instead
    logging.getLogger("alembic.runtime.migration").setLevel(
        logging.DEBUG if verbose else logging.WARNING
    )


def uvicorn_log_kwargs(fmt: str) -> dict[str, Any]:
    """What ``uvicorn.run`` / ``uvicorn.Config`` get for ``fmt``: in JSON, no logging config
    of uvicorn's own, so its records reach the root logger's JSON handler."""
    return {"log_config": None} if fmt == "json" else {}
