"""The event log: text and JSON lines, the rotating file, levels, repeated setup."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from centrex.config.settings import LoggingSettings
from centrex.logs import JsonFormatter, TextFormatter, event, reset_event_log, setup_event_log

LOGGER = "centrex.registrar"
TIMESTAMP = 1796016301.123  # 2026-11-30 05:25:01.123 UTC


@pytest.fixture(autouse=True)
def _clean_event_log() -> Iterator[None]:
    yield
    reset_event_log()


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC for the test, so timestamps can be compared exactly."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def settings(**values: object) -> LoggingSettings:
    return LoggingSettings.model_validate(values)


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(LOGGER, logging.INFO, __file__, 1, message, args, None)
    made.created = TIMESTAMP
    made.msecs = 123.0
    made.__dict__.update(extra)
    return made


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


# --- text -----------------------------------------------------------------


@pytest.mark.usefixtures("utc")
def test_text_line_is_time_level_logger_and_message() -> None:
    line = TextFormatter().format(record("binding %s added", "alice"))
    assert line == "2026-11-30 05:25:01.123 INFO centrex.registrar: binding alice added"


def test_text_goes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(), None)
    logging.getLogger(LOGGER).info("hello")
    (line,) = stderr_lines(capsys)
    assert line.endswith(" INFO centrex.registrar: hello")
    datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")


def test_event_reads_name_then_fields_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(), None)
    event(
        logging.getLogger(LOGGER),
        "registered",
        aor="sip:1001@example.com",
        contact="<sip:1001@10.0.0.5:5060>",
        expires=3600,
    )
    (line,) = stderr_lines(capsys)
    assert line.endswith(
        "centrex.registrar: registered aor=sip:1001@example.com "
        "contact=<sip:1001@10.0.0.5:5060> expires=3600"
    )


def test_text_quotes_values_with_spaces_quotes_or_line_breaks() -> None:
    line = TextFormatter().format(record("x", agent='Acme "Phone" 2', note="a\nb", empty=""))
    assert line.endswith(r'x agent="Acme \"Phone\" 2" note="a\nb" empty=""')
    assert "\n" not in line


def test_extra_fields_are_appended_to_the_text_line() -> None:
    line = TextFormatter().format(record("dropped", peer="10.0.0.9:5060"))
    assert line.endswith("centrex.registrar: dropped peer=10.0.0.9:5060")


def test_text_line_is_followed_by_the_traceback_of_an_exception(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_event_log(settings(), None)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger(LOGGER).exception("failed")
    lines = stderr_lines(capsys)
    assert lines[0].endswith("ERROR centrex.registrar: failed")
    assert lines[-1] == "ValueError: boom"


# --- JSON -----------------------------------------------------------------


def test_json_line_has_ts_level_logger_msg(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(format="json"), None)
    logging.getLogger(LOGGER).warning("binding %s refused", "alice")
    (line,) = stderr_lines(capsys)
    parsed = json.loads(line)
    assert parsed.keys() == {"ts", "level", "logger", "msg"}
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == LOGGER
    assert parsed["msg"] == "binding alice refused"
    assert datetime.fromisoformat(parsed["ts"]).tzinfo is not None


@pytest.mark.usefixtures("utc")
def test_json_ts_is_local_time_with_offset_to_the_millisecond() -> None:
    parsed = json.loads(JsonFormatter().format(record("x")))
    assert parsed["ts"] == "2026-11-30T05:25:01.123+00:00"


def test_event_is_msg_plus_fields_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(format="json"), None)
    event(logging.getLogger(LOGGER), "registered", aor="sip:1001@example.com", expires=3600)
    parsed = json.loads(capsys.readouterr().err)
    assert parsed["msg"] == "registered"
    assert parsed["aor"] == "sip:1001@example.com"
    assert parsed["expires"] == 3600


def test_json_has_extra_fields_and_strings_for_other_types() -> None:
    parsed = json.loads(JsonFormatter().format(record("x", peer="10.0.0.9", path=Path("/a"))))
    assert parsed["peer"] == "10.0.0.9"
    assert parsed["path"] == "/a"


def test_json_field_named_like_a_core_key_gets_an_underscore() -> None:
    formatted: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            formatted.append(JsonFormatter().format(record))

    logger = logging.getLogger(LOGGER)
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        event(logger, "said", msg="hi", ts=1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    parsed = json.loads(formatted[0])
    assert (parsed["msg"], parsed["msg_"], parsed["ts_"]) == ("said", "hi", 1)


def test_json_line_carries_the_traceback_in_exc(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(format="json"), None)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger(LOGGER).exception("failed")
    parsed = json.loads(capsys.readouterr().err)
    assert parsed["msg"] == "failed"
    assert parsed["exc"].endswith("ValueError: boom")


# --- levels ---------------------------------------------------------------


def test_debug_is_hidden_at_info_level(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(level="info"), None)
    log = logging.getLogger(LOGGER)
    log.debug("hidden")
    event(log, "hidden_event", level=logging.DEBUG)
    log.info("shown")
    assert [line.split(": ", 1)[1] for line in stderr_lines(capsys)] == ["shown"]


def test_debug_is_shown_at_debug_level(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(level="debug"), None)
    logging.getLogger("centrex.transport.udp").debug("datagram")
    assert stderr_lines(capsys)[0].endswith(" DEBUG centrex.transport.udp: datagram")


def test_warning_level_hides_info(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(level="warning"), None)
    log = logging.getLogger(LOGGER)
    log.info("hidden")
    log.warning("shown")
    assert len(stderr_lines(capsys)) == 1


def test_event_below_the_level_renders_no_field() -> None:
    rendered: list[str] = []

    class Field:
        def __str__(self) -> str:
            rendered.append("x")
            return "x"

    setup_event_log(settings(level="info"), None)
    event(logging.getLogger(LOGGER), "retransmitted", level=logging.DEBUG, request=Field())
    assert rendered == []


def test_event_record_names_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        event(logging.getLogger(LOGGER), "registered", aor="sip:a@b")
    (made,) = caplog.records
    assert made.funcName == "test_event_record_names_the_caller"
    assert made.getMessage() == "registered aor=sip:a@b"


# --- file and rotation ----------------------------------------------------


def test_file_gets_the_lines_too_and_its_folder_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "centrex.log"
    setup_event_log(settings(format="json"), log_file)
    logging.getLogger(LOGGER).info("hello")
    reset_event_log()
    assert json.loads(log_file.read_text(encoding="utf-8"))["msg"] == "hello"
    assert json.loads(capsys.readouterr().err)["msg"] == "hello"


def test_log_file_rotates_at_max_bytes_keeping_backup_count_files(tmp_path: Path) -> None:
    log_file = tmp_path / "centrex.log"
    setup_event_log(settings(max_bytes=300, backup_count=2), log_file)
    log = logging.getLogger(LOGGER)
    for number in range(40):
        log.info("message %02d %s", number, "x" * 20)
    reset_event_log()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["centrex.log", "centrex.log.1", "centrex.log.2"]
    for name in files:
        assert 0 < (tmp_path / name).stat().st_size <= 300
    assert "message 39" in log_file.read_text()
    newest_backup = (tmp_path / "centrex.log.1").read_text().splitlines()[-1]
    oldest_first_line = log_file.read_text().splitlines()[0]
    assert int(newest_backup.split()[5]) + 1 == int(oldest_first_line.split()[5])


def test_zero_backup_count_starts_the_log_file_over(tmp_path: Path) -> None:
    log_file = tmp_path / "centrex.log"
    setup_event_log(settings(max_bytes=300, backup_count=0), log_file)
    for number in range(40):
        logging.getLogger(LOGGER).info("message %02d %s", number, "x" * 20)
    reset_event_log()
    assert [p.name for p in tmp_path.iterdir()] == ["centrex.log"]
    assert 0 < log_file.stat().st_size <= 300
    assert "message 39" in log_file.read_text()


def test_zero_max_bytes_never_rotates(tmp_path: Path) -> None:
    log_file = tmp_path / "centrex.log"
    setup_event_log(settings(max_bytes=0, backup_count=2), log_file)
    for number in range(40):
        logging.getLogger(LOGGER).info("message %02d %s", number, "x" * 20)
    reset_event_log()
    assert [p.name for p in tmp_path.iterdir()] == ["centrex.log"]
    assert len(log_file.read_text().splitlines()) == 40


def test_record_longer_than_max_bytes_is_written_without_rotating_an_empty_file(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "centrex.log"
    setup_event_log(settings(max_bytes=100, backup_count=2), log_file)
    logging.getLogger(LOGGER).info("y" * 200)
    reset_event_log()
    assert [p.name for p in tmp_path.iterdir()] == ["centrex.log"]
    assert "y" * 200 in log_file.read_text()


# --- setup ----------------------------------------------------------------


def test_setup_twice_does_not_duplicate_handlers_or_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "centrex.log"
    setup_event_log(settings(), log_file)
    setup_event_log(settings(), log_file)
    assert len(logging.getLogger("centrex").handlers) == 2
    logging.getLogger(LOGGER).info("once")
    reset_event_log()
    assert len(stderr_lines(capsys)) == 1
    assert len(log_file.read_text().splitlines()) == 1


def test_setup_again_applies_the_new_level_and_format(capsys: pytest.CaptureFixture[str]) -> None:
    setup_event_log(settings(level="info", format="text"), None)
    setup_event_log(settings(level="debug", format="json"), None)
    logging.getLogger(LOGGER).debug("now visible")
    assert json.loads(capsys.readouterr().err)["msg"] == "now visible"


def test_setup_keeps_handlers_others_added(capsys: pytest.CaptureFixture[str]) -> None:
    other = logging.NullHandler()
    logging.getLogger("centrex").addHandler(other)
    try:
        setup_event_log(settings(), None)
        setup_event_log(settings(), None)
        assert other in logging.getLogger("centrex").handlers
    finally:
        logging.getLogger("centrex").removeHandler(other)


def test_centrex_lines_do_not_reach_the_root_logger_until_reset() -> None:
    setup_event_log(settings(), None)
    assert logging.getLogger("centrex").propagate is False
    reset_event_log()
    assert logging.getLogger("centrex").propagate is True
    assert logging.getLogger("centrex").handlers == []


def test_stderr_handler_follows_a_replaced_sys_stderr(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    setup_event_log(settings(), None)
    with (tmp_path / "err.txt").open("w") as replacement:
        monkeypatch.setattr(sys, "stderr", replacement)
        logging.getLogger(LOGGER).info("redirected")
    assert "redirected" in (tmp_path / "err.txt").read_text()
