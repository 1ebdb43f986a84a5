"""Log output (logs.py): JSON lines, the logfmt request line, safe ids, uvicorn's config."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator

import pytest

from LLM_Mesh.logs import (
    REQUEST_ATTR,
    TEXT_FORMAT,
    JsonFormatter,
    MeshHandler,
    RequestLine,
    TextFormatter,
    log_request,
    safe_id,
    setup_logging,
    uvicorn_log_kwargs,
)


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("LLM_Mesh.x", logging.WARNING, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_line_of_a_plain_record() -> None:
    obj = json.loads(JsonFormatter().format(record("node %s joined", "n1")))
    assert obj["msg"] == "node n1 joined" and obj["level"] == "WARNING"
    assert obj["logger"] == "LLM_Mesh.x" and obj["ts"].endswith("Z") and "T" in obj["ts"]


def test_json_line_of_a_request_puts_its_fields_on_top_and_drops_none() -> None:
    fields = {"request_id": "r1", "status": 200, "cost": 2.5e-05, "code": None, "stream": True}
    line = JsonFormatter().format(
        record("request %s", RequestLine(fields), **{REQUEST_ATTR: fields})
    )
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["msg"] == "request" and obj["request_id"] == "r1" and obj["status"] == 200
    assert obj["cost"] == 2.5e-05 and obj["stream"] is True and "code" not in obj


def test_json_line_is_json_dumps_of_its_object() -> None:
    # the one encoder the formatter keeps writes what json.dumps(obj, ensure_ascii=False,
    # default=str) wrote per call: non-ASCII as is, an object of no JSON type as its str()
    class Odd:
        def __str__(self) -> str:
            return "odd é"

    fields = {"request_id": "r1", "model": "modèle", "x": Odd(), "n": 1.5}
    rec = record("request %s", RequestLine(fields), **{REQUEST_ATTR: fields})
    obj = {"ts": JsonFormatter().format(rec)[8:32], "level": "WARNING", "logger": "LLM_Mesh.x",
           "msg": "request", **fields}  # fmt: skip
    assert JsonFormatter().format(rec) == json.dumps(obj, ensure_ascii=False, default=str)


def test_json_line_keeps_a_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    obj = json.loads(JsonFormatter().format(rec))
    assert obj["msg"] == "failed" and "ValueError: boom" in obj["exc"]


def test_request_line_text_is_logfmt() -> None:
    line = RequestLine({"a": "plain", "b": "two words", "c": 'q"uote', "d": None, "e": 1.5,
                        "f": False, "g": "", "h": "x=y"})  # fmt: skip
    assert str(line) == 'a=plain b="two words" c="q\\"uote" e=1.5 f=false g="" h="x=y"'


def test_log_request_only_when_info_is_on() -> None:
    logger = logging.getLogger("LLM_Mesh.test.requests")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            seen.append(rec)

    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.setLevel(logging.WARNING)
        log_request(logger, {"request_id": "r1"})
        assert seen == []
        logger.setLevel(logging.INFO)
        log_request(logger, {"request_id": "r1"})
        (rec,) = seen
        assert rec.getMessage() == "request request_id=r1"
        assert getattr(rec, REQUEST_ATTR) == {"request_id": "r1"}
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def test_log_request_goes_the_way_logger_info_goes() -> None:
    # the logger's filters, its disabled flag and propagation to the parent's handlers,
    # as logger.info; the record has no caller (neither format prints one)
    parent = logging.getLogger("LLM_Mesh.test.requests2")
    logger = logging.getLogger("LLM_Mesh.test.requests2.gateway")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            seen.append(rec)

    handler = Keep()
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    try:
        log_request(logger, {"request_id": "r1", "node": None})
        (rec,) = seen
        assert (rec.name, rec.levelno, rec.levelname) == (logger.name, logging.INFO, "INFO")
        assert rec.getMessage() == "request request_id=r1"
        caller = (rec.pathname, rec.lineno, rec.funcName)
        assert caller == ("(unknown file)", 0, "(unknown function)")
        assert rec.exc_info is None and rec.stack_info is None
        line = TextFormatter().format(rec)
        assert line.endswith(" INFO LLM_Mesh.test.requests2.gateway: request request_id=r1")
        logger.addFilter(lambda r: False)
        log_request(logger, {"request_id": "r2"})
        logger.filters.clear()
        logger.disabled = True
        log_request(logger, {"request_id": "r3"})
        assert len(seen) == 1
    finally:
        logger.disabled = False
        parent.removeHandler(handler)
        parent.setLevel(logging.NOTSET)


def test_safe_id() -> None:
    assert safe_id("req-1") == "req-1"
    assert safe_id(None) is None and safe_id("") is None
    assert safe_id("x" * 129) is None and safe_id("x" * 128) == "x" * 128
    assert safe_id("a\nb") is None and safe_id("a\x1bb") is None


def test_uvicorn_gets_no_config_of_its_own_in_json() -> None:
    assert uvicorn_log_kwargs("json") == {"log_config": None}
    assert uvicorn_log_kwargs("text") == {}


def test_text_lines_are_the_standard_formatters_with_the_time_made_once_a_second() -> None:
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    t0 = 1_796_083_200.0
    for created in (t0 + 0.001, t0 + 0.999, t0 + 1.0, t0 + 1.5, t0 - 3600.25, t0 + 0.5):
        rec = record("node %s joined", "n1")
        rec.created, rec.msecs = created, (created - int(created)) * 1000
        assert ours.format(rec) == standard.format(rec)
    rec = record("x")
    assert ours.formatTime(rec, "%H") == standard.formatTime(rec, "%H")


def test_request_line_quotes_only_what_needs_it() -> None:
    line = str(RequestLine({"a": True, "b": False, "c": 'x"y', "d": "k=v", "e": "two words",
                            "f": "", "g": 1.5, "h": 0, "i": None}))  # fmt: skip
    assert line == 'a=true b=false c="x\\"y" d="k=v" e="two words" f="" g=1.5 h=0'


# -- the request line straight to setup_logging's handler (log_request's direct way) --------

FIELDS = {"request_id": "r-1", "path": "/v1/chat/completions", "model": "m", "stream": False,
          "node": None, "status": 200, "outcome": "ok", "code": None, "attempts": 1,
          "latency_ms": 3.457, "cost": 2800, "note": "two words", "odd": 'q"=é'}  # fmt: skip


@pytest.fixture()
def own() -> Iterator[tuple[logging.Logger, MeshHandler, io.StringIO]]:
    """A request logger whose one handler is a MeshHandler (as setup_logging's), not
    propagating, so the root's handlers (pytest's) are not on its way; pytest adds its
    own to such a logger for the test's call (:func:`alone` takes them off)."""
    logger = logging.getLogger("LLM_Mesh.test.direct.gateway")
    out = io.StringIO()
    handler = MeshHandler(out)
    handler.setFormatter(TextFormatter())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, handler, out
    finally:
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.filters.clear()


def alone(own: tuple[logging.Logger, MeshHandler, io.StringIO],
          monkeypatch: pytest.MonkeyPatch) -> tuple[logging.Logger, MeshHandler, io.StringIO]:  # fmt: skip
    logger, handler, _out = own
    monkeypatch.setattr(logger, "handlers", [handler])  # pytest's off, until the test ends
    return own


def both_ways(logger: logging.Logger, out: io.StringIO, monkeypatch: pytest.MonkeyPatch,
              created: float) -> tuple[str, str]:  # fmt: skip
    """The line log_request writes directly, then the one logging's general way writes
    (a filter that keeps everything sends it there), at the same clock."""
    monkeypatch.setattr(time, "time", lambda: created)  # what LogRecord reads: before 3.13
    monkeypatch.setattr(time, "time_ns", lambda: round(created * 1e9))  # 3.13 on
    made: list[logging.LogRecord] = []
    real_init = logging.LogRecord.__init__

    def counted(self: logging.LogRecord, *a: object, **k: object) -> None:
        made.append(self)
        real_init(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(logging.LogRecord, "__init__", counted)
    log_request(logger, FIELDS)
    assert made == []  # the direct way: no LogRecord
    direct = out.getvalue()
    out.seek(0)
    out.truncate()
    logger.addFilter(lambda r: True)
    log_request(logger, FIELDS)
    logger.filters.clear()
    assert len(made) == 1  # the general way
    general = out.getvalue()
    out.seek(0)
    out.truncate()
    return direct, general


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_direct_request_line_is_the_general_paths_bytes(
    own: tuple[logging.Logger, MeshHandler, io.StringIO], monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:  # fmt: skip
    logger, handler, out = alone(own, monkeypatch)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    t0 = 1_796_083_200.0
    for created in (t0 + 0.001, t0 + 0.999, t0 + 1.0, t0 + 1.5, t0 - 3600.25, t0 + 0.0005):
        direct, general = both_ways(logger, out, monkeypatch, created)
        assert direct == general and direct.endswith("\n") and direct.count("\n") == 1
    if fmt == "text":
        assert direct.endswith(
            " INFO LLM_Mesh.test.direct.gateway: request request_id=r-1 path=/v1/chat/completions"
            " model=m stream=false status=200 outcome=ok attempts=1 latency_ms=3.457 cost=2800"
            ' note="two words" odd="q\\"=é"\n'
        )
    else:
        obj = json.loads(direct)
        assert obj["msg"] == "request" and obj["odd"] == 'q"=é' and "node" not in obj
        assert obj["ts"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0)) + ".000Z"


def test_direct_request_line_honours_a_level_name_and_the_formatters_clock(
    own: tuple[logging.Logger, MeshHandler, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler, out = alone(own, monkeypatch)
    assert handler.formatter is not None
    handler.formatter.converter = time.gmtime  # type: ignore[assignment]
    monkeypatch.setitem(logging._levelToName, logging.INFO, "NOTE")  # type: ignore[attr-defined]
    direct, general = both_ways(logger, out, monkeypatch, 1_796_083_200.25)
    assert direct == general and " NOTE LLM_Mesh." in direct


def test_a_foreign_handler_filter_or_formatter_takes_the_general_way(
    own: tuple[logging.Logger, MeshHandler, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler, out = alone(own, monkeypatch)
    # a filter on the handler drops the line
    handler.addFilter(lambda r: False)
    log_request(logger, FIELDS)
    assert out.getvalue() == ""
    handler.filters.clear()

    # a filter on the logger sees the record (and may change it)
    def mark(rec: logging.LogRecord) -> bool:
        rec.name = "renamed"
        return True

    logger.addFilter(mark)
    log_request(logger, FIELDS)
    assert " INFO renamed: request request_id=r-1 " in out.getvalue()
    logger.filters.clear()
    out.seek(0)
    out.truncate()
    # a second handler gets the line too
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            seen.append(rec)

    extra = Keep()
    logger.addHandler(extra)
    log_request(logger, FIELDS)
    logger.removeHandler(extra)
    assert len(seen) == 1 and out.getvalue().count("\n") == 1
    out.seek(0)
    out.truncate()
    # another format, or a formatter of the user's own, is used as given
    handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
    log_request(logger, FIELDS)
    assert out.getvalue().startswith("INFO|request request_id=r-1 ")
    out.seek(0)
    out.truncate()
    handler.setFormatter(TextFormatter("%(name)s %(message)s"))
    log_request(logger, FIELDS)
    assert out.getvalue().startswith("LLM_Mesh.test.direct.gateway request request_id=r-1 ")
    out.seek(0)
    out.truncate()
    # a handler level above INFO, a logger level above INFO, a disabled logger: nothing
    handler.setFormatter(TextFormatter())
    handler.setLevel(logging.WARNING)
    log_request(logger, FIELDS)
    handler.setLevel(logging.NOTSET)
    logger.disabled = True
    log_request(logger, FIELDS)
    logger.disabled = False
    logger.setLevel(logging.WARNING)
    log_request(logger, FIELDS)
    assert out.getvalue() == ""


def test_a_direct_line_is_flushed_under_the_handlers_lock(
    own: tuple[logging.Logger, MeshHandler, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler, _out = alone(own, monkeypatch)
    seen: list[tuple[str, bool]] = []

    class Watched(io.StringIO):
        def write(self, text: str) -> int:
            seen.append(("write", handler.lock._is_owned()))  # type: ignore[union-attr]
            return super().write(text)

        def flush(self) -> None:
            seen.append(("flush", handler.lock._is_owned()))  # type: ignore[union-attr]

    handler.setStream(Watched())
    seen.clear()
    log_request(logger, FIELDS)
    assert seen == [("write", True), ("flush", True)]


def test_a_plain_stream_handler_is_not_written_to_directly(
    own: tuple[logging.Logger, MeshHandler, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler, out = alone(own, monkeypatch)
    plain = logging.StreamHandler(out)
    plain.setFormatter(TextFormatter())
    emitted: list[logging.LogRecord] = []
    monkeypatch.setattr(plain, "emit", emitted.append)
    logger.handlers[:] = [plain]
    log_request(logger, FIELDS)
    assert len(emitted) == 1 and out.getvalue() == ""
    logger.handlers[:] = [handler]
    log_request(logger, FIELDS)
    assert len(emitted) == 1 and out.getvalue().count("\n") == 1


def test_a_failed_direct_write_goes_to_handle_error_with_the_record(
    own: tuple[logging.Logger, MeshHandler, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler, _out = alone(own, monkeypatch)

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    handler.setStream(Broken())
    failed: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", failed.append)
    log_request(logger, FIELDS)
    (rec,) = failed
    assert rec.getMessage().startswith("request request_id=r-1 ")
    assert getattr(rec, REQUEST_ATTR) == FIELDS


def test_setup_logging_installs_the_projects_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    setup_logging(fmt="json")
    (handler,) = root.handlers
    assert type(handler) is MeshHandler and type(handler.formatter) is JsonFormatter


def test_setup_logging_keeps_alembics_migration_lines_for_verbose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found 2026-12-07 (newuser40): the first ``llm-mesh registry serve`` on a new home
    printed 38 alembic lines ("Context impl SQLiteImpl." three times, then each migration
    with the loose lines of its docstring: "they were made.", "``llm_mesh_settle_batch_once``.")
    before its own; the store says one line instead (``store_migrate.migrate_to_head``)."""
    root = logging.getLogger()
    migration = logging.getLogger("alembic.runtime.migration")
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(migration, "level", migration.level)
    setup_logging()
    assert not migration.isEnabledFor(logging.INFO)
    setup_logging(verbose=True)
    assert migration.isEnabledFor(logging.INFO)
