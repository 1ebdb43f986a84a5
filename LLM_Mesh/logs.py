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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from LLM_Mesh.core.printable import log_text

__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
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


class RequestLine:
    """A request line's fields; ``str()`` is its logfmt text (rendered only if emitted)."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(f"{k}={_logfmt(v)}" for k, v in self.fields.items() if v is not None)


def log_request(logger: logging.Logger, fields: Mapping[str, Any]) -> None:
    """One INFO line for one request (see the module docstring).

    What ``logger.info`` does, less its look-up of the calling source line (a walk up the
    stack per line; neither format here prints it): the record says ``(unknown file)``,
    line 0, as every record does when ``logging._srcfile`` is ``None``."""
    if logger.isEnabledFor(logging.INFO):
        logger.handle(logger.makeRecord(
            logger.name, logging.INFO, "(unknown file)", 0, "request %s", (RequestLine(fields),),
            None, "(unknown function)", {REQUEST_ATTR: fields},
        ))  # fmt: skip


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        obj: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
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
        return json.dumps(obj, ensure_ascii=False, default=str)


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
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = cached = (second, text)
        msec = self.default_msec_format
        return cached[1] if msec is None else msec % (cached[1], record.msecs)


def setup_logging(verbose: bool = False, fmt: str = "text") -> None:
    """The process's logging: INFO (DEBUG with ``verbose``) to stderr, text or JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # one line per heartbeat is noise; the mesh's own loggers say what matters
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # alembic names each of its plugins as it loads them: seven lines at every start
    logging.getLogger("alembic.runtime.plugins").setLevel(
        logging.DEBUG if verbose else logging.WARNING
    )


def uvicorn_log_kwargs(fmt: str) -> dict[str, Any]:
    """What ``uvicorn.run`` / ``uvicorn.Config`` get for ``fmt``: in JSON, no logging config
    of uvicorn's own, so its records reach the root logger's JSON handler."""
    return {"log_config": None} if fmt == "json" else {}
