"""SIP over TLS on the loopback (RFC 3261 26.2.1; RFC 5630), with a throwaway certificate.

The certificate is made with the ``openssl`` command (the ``cryptography``
package is not a dependency); without it these tests are skipped.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from centrex.sip.message import Request, Response
from centrex.sip.parser import parse_message
from centrex.transport import (
    ListenAddress,
    Peer,
    TransportLayer,
    TransportLimits,
    client_context,
    server_context,
)
from tests.transport.helpers import STEP, read_message, request_bytes, run, running_layer

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="no openssl command to make a test certificate"
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def test_tls_round_trip_with_a_self_signed_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate

    async def main() -> None:
        context = server_context(cert, key)
        async with running_layer("tls:127.0.0.1:0", reply=200, tls_context=context) as (
            layer,
            inbox,
        ):
            trust = client_context(cert)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", layer.bound_port("tls"), ssl=trust, server_hostname="localhost"
                ),
                STEP,
            )
            writer.write(request_bytes("REGISTER", transport="TLS", sent_by="127.0.0.1:9"))
            response = parse_message(await read_message(reader), stream=True)
            request, peer, local = await inbox.next()
            writer.write(b"\r\n\r\n")
            pong = await asyncio.wait_for(reader.readexactly(2), STEP)
            writer.close()
            assert await inbox.next_closed() == peer
        assert isinstance(response, Response) and response.status == 200
        assert isinstance(request, Request) and request.method == "REGISTER"
        assert (peer.transport, local.transport) == ("tls", "tls")
        assert pong == b"\r\n"

    run(main)


def test_send_to_over_tls_checks_the_server_name(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate

    async def main() -> None:
        context = server_context(cert, key)
        async with running_layer("tls:127.0.0.1:0", tls_context=context) as (server, inbox):
            target = Peer("tls", "127.0.0.1", server.bound_port("tls"))
            async with running_layer(client_tls_context=client_context(cert)) as (client, _):
                assert await client.send_to(
                    request_bytes(transport="TLS"), target, server_name="localhost"
                )
                message, _, _ = await inbox.next()
                assert isinstance(message, Request)
            # A name the certificate does not carry fails the handshake.
            async with running_layer(client_tls_context=client_context(cert)) as (client, _):
                assert not await client.send_to(b"x", target, server_name="other.example.com")

    run(main)


def test_tls_listener_without_a_certificate_is_refused() -> None:
    async def main() -> None:
        layer = TransportLayer(lambda *_: None)
        with pytest.raises(ValueError, match="TLS needs a certificate"):
            await layer.start([ListenAddress.parse("tls:127.0.0.1:0")])
        assert layer.bound == []

    run(main)


def test_server_context_error_names_the_files(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"missing-cert\.pem"):
        server_context(tmp_path / "missing-cert.pem", tmp_path / "missing-key.pem")


def test_client_context_verifies_by_default() -> None:
    context = client_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_stalled_tls_handshakes_count_toward_the_per_address_limit(
    certificate: tuple[Path, Path],
) -> None:
    """Connections that never send a ClientHello hold a descriptor each: past
    the per-address limit, another from the same address is closed at once,
    a real client too; once they go, a real client is served again."""
    cert, key = certificate

    async def main() -> None:
        context = server_context(cert, key)
        limits = TransportLimits(max_connections_per_address=3, connect_timeout=5.0)
        async with running_layer(
            "tls:127.0.0.1:0", reply=200, tls_context=context, limits=limits
        ) as (layer, _):
            port = layer.bound_port("tls")
            stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(1), STEP) == b""  # closed by the server
            writer.close()
            trust = client_context(cert)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.wait_for(
                    asyncio.open_connection(
                        "127.0.0.1", port, ssl=trust, server_hostname="localhost"
                    ),
                    STEP,
                )
            for _, stalled_writer in stalled:
                stalled_writer.close()
            await asyncio.sleep(0.2)
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=trust, server_hostname="localhost"),
                STEP,
            )
            writer.write(request_bytes("REGISTER", transport="TLS", sent_by="127.0.0.1:9"))
            response = parse_message(await read_message(reader), stream=True)
            assert isinstance(response, Response) and response.status == 200
            writer.close()

    run(main)
