"""The `centrex` command line."""

from __future__ import annotations

from click.testing import CliRunner

from centrex.cli import main

OPTIONS = (
    b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: x\r\n"
    b"CSeq: 1 OPTIONS\r\n\r\n"
)


def test_parse_shows_the_typed_views_of_a_valid_message() -> None:
    result = CliRunner().invoke(main, ["parse"], input=OPTIONS)
    assert result.exit_code == 0
    assert "request   OPTIONS sip:example.com" in result.output
    assert "cseq      1 OPTIONS" in result.output


def test_parse_accepts_a_file_typed_with_plain_line_feeds() -> None:
    result = CliRunner().invoke(main, ["parse"], input=OPTIONS.replace(b"\r\n", b"\n"))
    assert result.exit_code == 0
    assert "call-id   x" in result.output


def test_parse_reports_the_status_a_malformed_request_gets() -> None:
    bad = OPTIONS.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    result = CliRunner().invoke(main, ["parse"], input=bad)
    assert result.exit_code == 1
    assert "answered 400" in result.output
    assert "CSeq" in result.output


def test_parse_reports_garbage_as_dropped() -> None:
    result = CliRunner().invoke(main, ["parse"], input=b"hello\r\n\r\n")
    assert result.exit_code == 1
    assert "dropped" in result.output


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "parse" in result.output
    assert "serve" in result.output
