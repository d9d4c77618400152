"""The ``centrex`` command."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click

from centrex import __version__
from centrex.sip.errors import ParseError
from centrex.sip.message import Request
from centrex.sip.parser import parse_message, validate_request, validate_response


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="centrex")
def main() -> None:
    """Centrex: a SIP proxy server with an integrated registrar."""


@main.command()
def serve() -> None:
    """Run the SIP proxy and registrar (not built yet: see the README)."""
    click.echo(
        "centrex serve: the server (transports, proxy, registrar) is not built yet; "
        "this release holds the SIP protocol core. Try `centrex parse FILE`.",
        err=True,
    )
    sys.exit(2)


@main.command()
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--stream", is_flag=True, help="Apply TCP/TLS framing rules instead of UDP's.")
def parse(file: BinaryIO, stream: bool) -> None:
    """Parse one SIP message from FILE (or standard input) and show what Centrex reads.

    Exits 0 for a valid message; 1 with the status Centrex would answer (or
    "dropped") for a malformed one.
    """
    data = file.read()
    if b"\r\n" not in data and b"\n" in data:
        data = data.replace(b"\n", b"\r\n")
    try:
        message = parse_message(data, stream=stream, validate=False)
        if isinstance(message, Request):
            validate_request(message)
        else:
            validate_response(message)
    except ParseError as exc:
        answer = "dropped (no answer)" if exc.drop else f"answered {exc.status} {exc.reason}"
        click.echo(f"malformed: {exc.reason}: {answer}")
        sys.exit(1)
    if isinstance(message, Request):
        click.echo(f"request   {message.method} {message.uri}")
    else:
        click.echo(f"response  {message.status} {message.reason}")
    click.echo(f"call-id   {message.call_id}")
    click.echo(f"cseq      {message.cseq}")
    click.echo(f"from      {message.from_addr}")
    click.echo(f"to        {message.to_addr}")
    for via in message.vias:
        click.echo(f"via       {via}")
    for contact in message.contacts:
        click.echo(f"contact   {contact}")
    click.echo(f"body      {len(message.body)} bytes")
    click.echo("headers:")
    for name, value in message.header_items():
        click.echo(f"  {name}: {value}")


if __name__ == "__main__":
    main()
