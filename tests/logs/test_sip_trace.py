"""The SIP trace log: the Tx/Rx lines, the milliseconds between entries, rotation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from centrex.config.settings import LoggingSettings
from centrex.logs import NullTrace, SipTrace, format_peer, open_sip_trace

OPTIONS = (
    b"OPTIONS sip:192.168.1.2:7000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.1:5060;branch=z9hG4bK1\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
OPTIONS_TEXT = (
    "OPTIONS sip:192.168.1.2:7000 SIP/2.0\n"
    "Via: SIP/2.0/UDP 192.168.1.1:5060;branch=z9hG4bK1\n"
    "Content-Length: 0\n"
)
OK = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


def trace_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_sent_message_follows_a_tx_line_and_a_blank_line_follows_it(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.sent(OPTIONS, "192.168.1.2", 7000, now=10.0)
    assert trace_text(path) == (
        f">>>> TxTxTx... (0 Ms, To: 192.168.1.2:7000) >>>>\n{OPTIONS_TEXT}\n"
    )


def test_received_message_follows_an_rx_line(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.received(OK, "192.168.1.2", 7000, now=10.0)
    assert trace_text(path) == (
        "<<<< RxRxRx... (0 Ms, From: 192.168.1.2:7000) <<<<\nSIP/2.0 200 OK\nContent-Length: 0\n\n"
    )


def test_ms_is_the_time_since_the_previous_entry_from_the_given_now(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.sent(OPTIONS, "192.168.1.2", 7000, now=100.0)
        trace.received(OK, "192.168.1.2", 7000, now=100.063)
        trace.sent(OPTIONS, "192.168.1.2", 7000, now=100.063)
        trace.sent(OPTIONS, "192.168.1.2", 7000, now=101.5634)
    headers = [line for line in trace_text(path).splitlines() if line[:4] in (">>>>", "<<<<")]
    assert headers == [
        ">>>> TxTxTx... (0 Ms, To: 192.168.1.2:7000) >>>>",
        "<<<< RxRxRx... (63 Ms, From: 192.168.1.2:7000) <<<<",
        ">>>> TxTxTx... (0 Ms, To: 192.168.1.2:7000) >>>>",
        ">>>> TxTxTx... (1500 Ms, To: 192.168.1.2:7000) >>>>",
    ]


def test_a_clock_stepping_back_shows_zero_ms(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.sent(OPTIONS, "10.0.0.1", 5060, now=5.0)
        trace.sent(OPTIONS, "10.0.0.1", 5060, now=4.0)
    assert "(0 Ms, To: 10.0.0.1:5060)" in trace_text(path).splitlines()[-5]


def test_ipv6_peer_is_written_in_brackets(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.received(OK, "::1", 5060, now=0.0)
        trace.sent(OK, "2001:db8::7", 5061, now=0.0)
    lines = trace_text(path).splitlines()
    assert lines[0] == "<<<< RxRxRx... (0 Ms, From: [::1]:5060) <<<<"
    assert lines[4] == ">>>> TxTxTx... (0 Ms, To: [2001:db8::7]:5061) >>>>"


def test_format_peer_does_not_bracket_twice() -> None:
    assert format_peer("[::1]", 5060) == "[::1]:5060"
    assert format_peer("example.com", 5060) == "example.com:5060"


def test_message_with_a_body_keeps_the_blank_line_before_the_body(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    message = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.sent(message, "10.0.0.1", 5060, now=0.0)
    assert trace_text(path).split("\n", 1)[1] == (
        "MESSAGE sip:a@b SIP/2.0\nContent-Length: 5\n\nhello\n\n"
    )


def test_keep_alive_is_a_line_and_a_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.received(b"\r\n\r\n", "10.0.0.1", 5060, now=0.0)
    assert trace_text(path) == "<<<< RxRxRx... (0 Ms, From: 10.0.0.1:5060) <<<<\n\n"


def test_undecodable_bytes_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.received(b"SIP/2.0 200 \xff\xfe OK\r\n\r\n", "10.0.0.1", 5060, now=0.0)
    assert "SIP/2.0 200 \ufffd\ufffd OK\n" in trace_text(path)


def test_trace_rotates_at_max_bytes_keeping_backup_count_files(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    entry_bytes = len(f">>>> TxTxTx... (0 Ms, To: 10.0.0.1:5060) >>>>\n{OPTIONS_TEXT}\n")
    with SipTrace.open(path, max_bytes=3 * entry_bytes, backup_count=2) as trace:
        for _ in range(20):
            trace.sent(OPTIONS, "10.0.0.1", 5060, now=0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sip-trace.log",
        "sip-trace.log.1",
        "sip-trace.log.2",
    ]
    # 20 entries, 3 to a file: the current file has the last 2, the backups 3 each.
    assert path.stat().st_size == 2 * entry_bytes
    assert (tmp_path / "sip-trace.log.1").stat().st_size == 3 * entry_bytes
    assert (tmp_path / "sip-trace.log.2").stat().st_size == 3 * entry_bytes


def test_trace_rotation_counts_what_the_file_held_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    path.write_bytes(b"x" * 90)
    with SipTrace.open(path, max_bytes=100, backup_count=1) as trace:
        trace.sent(OK, "10.0.0.1", 5060, now=0.0)
    assert (tmp_path / "sip-trace.log.1").read_bytes() == b"x" * 90
    assert trace_text(path).startswith(">>>> TxTxTx...")


def test_trace_with_zero_backup_count_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=200, backup_count=0) as trace:
        for number in range(10):
            trace.sent(b"MESSAGE %d" % number, "10.0.0.1", 5060, now=0.0)
    assert [p.name for p in tmp_path.iterdir()] == ["sip-trace.log"]
    assert path.stat().st_size <= 200
    assert trace_text(path).rstrip().endswith("MESSAGE 9")


def test_reopening_appends_and_the_first_entry_shows_zero_ms(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.sent(OK, "10.0.0.1", 5060, now=1.0)
    with SipTrace.open(path, max_bytes=0, backup_count=0) as trace:
        trace.sent(OK, "10.0.0.1", 5060, now=9.0)
    assert trace_text(path).count(">>>> TxTxTx... (0 Ms, To: 10.0.0.1:5060) >>>>") == 2


def test_entries_reach_the_file_at_most_every_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"

    def on_disk() -> int:
        return trace_text(path).count("TxTxTx")

    trace = SipTrace.open(path, max_bytes=0, backup_count=0, flush_interval_s=0.5)
    trace.sent(OK, "10.0.0.1", 5060, now=0.0)
    assert on_disk() == 1
    trace.sent(OK, "10.0.0.1", 5060, now=0.2)
    assert on_disk() == 1
    trace.sent(OK, "10.0.0.1", 5060, now=0.5)
    assert on_disk() == 3
    trace.sent(OK, "10.0.0.1", 5060, now=0.6)
    assert on_disk() == 3
    trace.flush()
    assert on_disk() == 4
    trace.close()


def test_close_flushes_and_later_entries_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    trace = SipTrace.open(path, max_bytes=0, backup_count=0, flush_interval_s=60)
    trace.sent(OK, "10.0.0.1", 5060, now=0.0)
    trace.sent(OK, "10.0.0.1", 5060, now=1.0)
    assert trace.enabled
    trace.close()
    trace.close()
    trace.sent(OK, "10.0.0.1", 5060, now=2.0)
    assert not trace.enabled
    assert trace_text(path).count("TxTxTx") == 2


def test_open_makes_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "data" / "logs" / "sip-trace.log"
    SipTrace.open(path, max_bytes=0, backup_count=0).close()
    assert path.exists()


def test_write_error_is_logged_once_and_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    trace = SipTrace.open(tmp_path / "sip-trace.log", max_bytes=0, backup_count=0)
    trace._file.close()  # type: ignore[union-attr]
    trace._file = FullDisk()  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="centrex.logs.sip_trace"):
        trace.sent(OK, "10.0.0.1", 5060, now=0.0)
        trace.sent(OK, "10.0.0.1", 5060, now=1.0)
    assert len(caplog.records) == 1
    assert "No space left on device" in caplog.text
    trace.close()


def test_null_trace_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    trace = NullTrace()
    assert not trace.enabled
    trace.sent(OPTIONS, "10.0.0.1", 5060, now=0.0)
    trace.received(OK, "::1", 5060, now=1.0)
    trace.flush()
    trace.close()
    assert list(tmp_path.iterdir()) == []


def test_open_sip_trace_is_a_null_trace_unless_enabled(tmp_path: Path) -> None:
    path = tmp_path / "sip-trace.log"
    off = open_sip_trace(LoggingSettings(), path)
    assert isinstance(off, NullTrace)
    assert not path.exists()
    on = open_sip_trace(LoggingSettings(sip_trace=True), path)
    assert isinstance(on, SipTrace)
    assert on.enabled
    on.close()
    assert path.exists()
