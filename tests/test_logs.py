"""Log output (logs.py): JSON lines, the logfmt request line, safe ids, uvicorn's config."""

from __future__ import annotations

import json
import logging
import sys

from LLM_Mesh.logs import (
    REQUEST_ATTR,
    TEXT_FORMAT,
    JsonFormatter,
    RequestLine,
    TextFormatter,
    log_request,
    safe_id,
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
    line = JsonFormatter().format(record("request %s", RequestLine(fields), **{REQUEST_ATTR: fields}))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["msg"] == "request" and obj["request_id"] == "r1" and obj["status"] == 200
    assert obj["cost"] == 2.5e-05 and obj["stream"] is True and "code" not in obj


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
