"""Raw SIP over sockets, for the end-to-end tests that need bytes sipp won't send.

Just enough to build a request, send it over UDP or TCP to a server on
127.0.0.1 and read what (if anything) comes back within a deadline.
"""

from __future__ import annotations

import re
import secrets
import socket
import time

HOST = "127.0.0.1"


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def request(
    method: str,
    uri: str,
    *,
    transport: str,
    local_port: int,
    headers: dict[str, str] | None = None,
    omit: tuple[str, ...] = (),
    version: str = "SIP/2.0",
    body: bytes = b"",
) -> bytes:
    """A request from a UA at 127.0.0.1:``local_port``; ``omit`` drops headers by name."""
    fields = {
        "Via": f"SIP/2.0/{transport.upper()} {HOST}:{local_port};branch={new_branch()};rport",
        "Max-Forwards": "70",
        "From": f"<sip:probe@{HOST}>;tag={secrets.token_hex(4)}",
        "To": f"<sip:probe@{HOST}>",
        "Call-ID": f"{secrets.token_hex(8)}@{HOST}",
        "CSeq": f"1 {method}",
    }
    fields.update(headers or {})
    fields["Content-Length"] = str(len(body))
    lines = [f"{method} {uri} {version}"]
    lines += [f"{name}: {value}" for name, value in fields.items() if name not in omit]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def options(server_port: int, *, transport: str, local_port: int) -> bytes:
    """OPTIONS addressed to the server itself (RFC 3261 11)."""
    return request(
        "OPTIONS",
        f"sip:{HOST}:{server_port}",
        transport=transport,
        local_port=local_port,
        headers={"To": f"<sip:{HOST}:{server_port}>", "Accept": "application/sdp"},
    )


def register(
    server_port: int, user: str, *, transport: str, local_port: int, expires: int = 3600
) -> bytes:
    """REGISTER ``user``@example.com with a contact at 127.0.0.1:``local_port``."""
    aor = f"<sip:{user}@example.com>"
    return request(
        "REGISTER",
        "sip:example.com",
        transport=transport,
        local_port=local_port,
        headers={
            "From": f"{aor};tag={secrets.token_hex(4)}",
            "To": aor,
            "Contact": f"<sip:{user}@{HOST}:{local_port};transport={transport}>",
            "Expires": str(expires),
        },
    )


def headers(message: bytes, name: str) -> list[str]:
    """The values of every ``name`` header of ``message`` (its long form), in order."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    pattern = re.compile(rf"^{name}\s*:\s*(.*)$", re.IGNORECASE)
    return [m.group(1) for line in head.split("\r\n")[1:] if (m := pattern.match(line))]


def answer(request: bytes, status: str) -> bytes:
    """A UAS's response to ``request``: its Vias, From, To (tagged), Call-ID, CSeq."""
    lines = [f"SIP/2.0 {status}"]
    lines += [f"Via: {value}" for value in headers(request, "via")]
    to = headers(request, "to")[0]
    lines += [
        f"From: {headers(request, 'from')[0]}",
        f"To: {to}" + ("" if ";tag=" in to else f";tag={secrets.token_hex(4)}"),
        f"Call-ID: {headers(request, 'call-id')[0]}",
        f"CSeq: {headers(request, 'cseq')[0]}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_line(response: bytes) -> str:
    return response.split(b"\r\n", 1)[0].decode("utf-8", "replace")


class UdpPeer:
    """A UDP socket on 127.0.0.1 talking to one server port."""

    def __init__(self, server_port: int) -> None:
        self.server = (HOST, server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port: int = self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def receive(self, timeout: float) -> bytes | None:
        """The next datagram, or None when nothing came within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        return data

    def drain(self, timeout: float) -> bytes:
        """Every byte that arrives within ``timeout`` seconds."""
        data = b""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            data += self.receive(left) or b""
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpPeer:
    """One TCP connection from 127.0.0.1 to a server port."""

    def __init__(self, server_port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, server_port), timeout=timeout)
        self.port: int = self.sock.getsockname()[1]
        self.buffer = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self, timeout: float) -> bytes | None:
        """The next whole message (framed by Content-Length), or None when none came
        complete within ``timeout`` seconds; the connection closing ends the wait."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._take_message()
            if message is not None:
                return message
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65535)
            except TimeoutError:
                return None
            except ConnectionError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buffer += chunk

    def _take_message(self) -> bytes | None:
        stripped = self.buffer.lstrip(b"\r\n")
        end = stripped.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = stripped[: end + 4]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value.strip() or b"0")
        total = end + 4 + length
        if len(stripped) < total:
            return None
        self.buffer = stripped[total:]
        return stripped[:total]

    def drain(self, timeout: float) -> bytes:
        """Every byte that arrives within ``timeout`` seconds (or until the server
        closes the connection), framed or not."""
        deadline = time.monotonic() + timeout
        while not self.closed and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65535)
            except TimeoutError:
                break
            except ConnectionError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buffer += chunk
        data, self.buffer = self.buffer, b""
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> TcpPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def final_answer(peer: UdpPeer | TcpPeer, timeout: float) -> bytes | None:
    """The first non-100 response within ``timeout`` (a 100 Trying is skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        answer = peer.receive(left)
        if answer is None or not answer.startswith(b"SIP/2.0 100 "):
            return answer


def open_peer(server_port: int, transport: str) -> UdpPeer | TcpPeer:
    """A fresh UDP socket or TCP connection to the server."""
    return UdpPeer(server_port) if transport == "udp" else TcpPeer(server_port)


def options_status(server_port: int, transport: str, timeout: float = 2.0) -> str | None:
    """The status line of the server's answer to an OPTIONS (None: no answer)."""
    with open_peer(server_port, transport) as peer:
        peer.send(options(server_port, transport=transport, local_port=peer.port))
        answer = final_answer(peer, timeout)
    return None if answer is None else status_line(answer)
