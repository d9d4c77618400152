"""Registrar presence events with real peers (issue 4, "What it must show").

- sipp replays the exchange of the issue in both wire forms: a watcher (1001)
  registers, subscribes user-available and user-unavailable and gets the
  lists; 1002 (another sipp) registers and unregisters and the watcher is
  told each; the watcher unsubscribes with Expires: 0; 1003 (a third sipp)
  comes and goes and no NOTIFY reaches the watcher any more. The sipp
  scenarios check the Event of every NOTIFY; the server's SIP trace is then
  read for what sipp cannot see as easily: the dialog of each NOTIFY (RFC
  6665 form), the new-request form (lanscape), the size limit, and that
  nothing at all was sent after the unsubscribe.
- baresip (Debian package ``baresip``) watches 1002 through the standard
  ``presence`` package (RFC 3856, PIDF open/closed) and must show it Offline,
  Online, Offline as a raw phone registers and unregisters 1002. baresip runs
  headless: no console module, its ``ctrl_tcp`` module answers the
  ``contacts`` command with what it shows a person.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import wire
from tests.e2e.conftest import SCENARIOS, CentrexServer, Phones, SippRun, pick_free_port

HOST = wire.HOST
#: The directory of these tests; 1001 watches, 1002 and 1003 come and go.
USERS = (("1001", "Alice"), ("1002", "Bob"), ("1003", "Carol"))
#: [registrar] settings of each wire form.
FORMS: dict[str, dict[str, object]] = {
    "rfc6665": {},
    "lanscape": {"presence_compat": "lanscape"},
}
#: [registrar] notify_max_bytes, default: every NOTIFY must fit (issue 4 step 2).
NOTIFY_MAX_BYTES = 1300

#: What the watcher is told, in order, in each form: the two lists, 1002
#: arriving, 1002 leaving, and (RFC 6665 only) the terminated NOTIFY of each
#: subscription after its Expires: 0.
EXPECTED_EVENTS = {
    "rfc6665": [
        "user-available;param=1001|Alice",
        "user-unavailable;param=1002|Bob|1003|Carol",
        "user-available;param=1002|Bob",
        "user-unavailable;param=1002|Bob",
        "user-available",
        "user-unavailable",
    ],
    "lanscape": [
        "user-available;param=1001|Alice",
        "user-unavailable;param=1002|Bob|1003|Carol",
        "user-available;param=1002|Bob",
        "user-unavailable;param=1002|Bob",
    ],
}


# -- the server's SIP trace ------------------------------------------------------------

_MARK = re.compile(
    r"^(?:>>>> TxTxTx\.\.\. \(\d+ Ms, To: (?P<to>\S+)\) >>>>"
    r"|<<<< RxRxRx\.\.\. \(\d+ Ms, From: (?P<src>\S+)\) <<<<)$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Traced:
    """One message of the server's SIP trace (``sent`` by the server, or received)."""

    index: int
    sent: bool
    peer: str
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0]

    @property
    def method(self) -> str | None:
        """The method of a request, None for a response."""
        first = self.first_line
        return None if first.startswith("SIP/2.0 ") else first.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        first = self.first_line
        return int(first.split()[1]) if first.startswith("SIP/2.0 ") else None

    @property
    def port(self) -> int:
        return int(self.peer.rsplit(":", 1)[1])

    def header(self, name: str) -> str | None:
        """The first header ``name`` (full name, as Centrex writes it)."""
        head = self.text.split("\n\n", 1)[0]
        for line in head.split("\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def tag(self, name: str) -> str | None:
        value = self.header(name) or ""
        found = re.search(r";\s*tag=([^;\s>]+)", value.rsplit(">", 1)[-1])
        return found.group(1) if found else None

    @property
    def cseq(self) -> int:
        return int((self.header("CSeq") or "0").split()[0])

    @property
    def wire_size(self) -> int:
        """Bytes on the wire: the trace writes each CRLF as LF and drops the
        blank line that ends a header block without a body."""
        head, _, body = self.text.partition("\n\n")
        return len(head.encode()) + head.count("\n") + 4 + len(body.encode())


def read_trace(server: CentrexServer) -> list[Traced]:
    """Every message of the server's SIP trace, in order (stop the server first:
    that flushes the trace)."""
    text = server.trace_path.read_text(encoding="utf-8", errors="replace")
    marks = list(_MARK.finditer(text))
    out = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() + 1 : end].rstrip("\n")
        sent = mark.group("to") is not None
        out.append(Traced(i, sent, mark.group("to") or mark.group("src"), body))
    return out


def describe(messages: list[Traced]) -> str:
    return "\n\n".join(
        f"#{m.index} {'sent to' if m.sent else 'received from'} {m.peer}:\n{m.text}"
        for m in messages
    )


# -- centrex subscriptions ----------------------------------------------------------------


def subscriptions(server: CentrexServer) -> list[str]:
    """The rows ``centrex subscriptions`` prints (SUBSCRIBER EVENT RESOURCE ...)."""
    script = Path(sys.executable).parent / "centrex"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "centrex.cli"]
    result = subprocess.run(
        [*command, "subscriptions", "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    if not lines or lines[0].startswith("no subscriptions"):
        return []
    counted = re.match(r"(\d+) subscription\(s\)", lines[0])
    assert counted is not None, result.stdout
    rows = [line for line in lines[2:] if line.strip()]
    assert len(rows) == int(counted.group(1)), result.stdout
    return rows


def wait_subscriptions(
    server: CentrexServer, predicate: Callable[[list[str]], bool], what: str, timeout: float = 5.0
) -> list[str]:
    deadline = time.monotonic() + timeout
    rows = subscriptions(server)
    while not predicate(rows):
        if time.monotonic() > deadline:
            pytest.fail(f"centrex subscriptions does not list {what}:\n{rows}", pytrace=False)
        time.sleep(0.25)
        rows = subscriptions(server)
    return rows


# -- sipp replays the exchange of the issue ---------------------------------------------


def _start_watcher(phones: Phones, form: str) -> tuple[SippRun, int]:
    """The sipp watcher of ``form`` (1001) and its port."""
    if form == "lanscape":
        run = phones.start(
            "presence_watcher_lanscape.xml",
            service="1001",
            name="watcher",
            extra=("-oocsf", str(SCENARIOS / "presence_lanscape_notify.xml")),
        )
    else:
        run = phones.start("presence_watcher.xml", service="1001", name="watcher")
    port = int(run.argv[run.argv.index("-p") + 1])
    return run, port


@pytest.mark.parametrize("form", list(FORMS))
def test_watcher_sees_users_come_and_go_and_nothing_after_unsubscribing(
    make_server: Callable[..., CentrexServer],
    make_phones: Callable[[CentrexServer], Phones],
    form: str,
) -> None:
    server = make_server(registrar=FORMS[form], users=USERS)
    phones = make_phones(server)

    watcher, watcher_port = _start_watcher(phones, form)
    watcher.wait_logged("WATCHING")  # both lists received
    # `centrex subscriptions` lists the two watches (from the recovery file,
    # saved about once a second).
    rows = wait_subscriptions(server, lambda rows: len(rows) == 2, "the watcher's two")
    assert sorted(row.split()[:2] for row in rows) == [
        ["sip:1001@example.com", "user-available"],
        ["sip:1001@example.com", "user-unavailable"],
    ], rows
    bob = phones.start("presence_phone.xml", service="1002", name="bob")
    watcher.wait_logged("SAW 1002 OFFLINE")
    phones.finish(bob)
    watcher.wait_logged("UNSUBSCRIBED")
    carol = phones.start("presence_phone.xml", service="1003", name="carol")
    phones.finish(carol, watcher)
    assert "QUIET" in watcher.logged()
    assert server.stop() == 0, f"graceful stop failed:\n{server.log()}"
    assert subscriptions(server) == [], "subscriptions left after Expires: 0"

    trace = read_trace(server)
    to_watcher = [m for m in trace if m.sent and m.port == watcher_port]
    notifies = [m for m in to_watcher if m.method == "NOTIFY"]
    events = [m.header("Event") for m in notifies]
    assert events == EXPECTED_EVENTS[form], describe(notifies)

    oversized = [m for m in trace if m.sent and m.method == "NOTIFY"]
    oversized = [m for m in oversized if m.wire_size > NOTIFY_MAX_BYTES]
    assert not oversized, describe(oversized)

    # Nothing was sent to anyone after 1003 showed up: not the NOTIFY of its
    # arrival, not that of its leaving (both subscriptions are over).
    carol_first = next(
        m.index
        for m in trace
        if not m.sent and m.method == "REGISTER" and "sip:1003@" in (m.header("To") or "")
    )
    late = [m for m in trace[carol_first:] if m.sent and m.method == "NOTIFY"]
    assert not late, "NOTIFY after the unsubscribe:\n" + describe(late)

    subscribes = [m for m in trace if not m.sent and m.method == "SUBSCRIBE"]
    assert [m.header("Expires") for m in subscribes] == ["3600", "3600", "0", "0"], describe(
        subscribes
    )
    answers = {
        m.header("Call-ID"): m
        for m in to_watcher
        if m.status == 200 and (m.header("CSeq") or "").endswith("SUBSCRIBE")
    }
    if form == "rfc6665":
        _assert_in_dialog(notifies, subscribes, answers)
    else:
        _assert_lanscape(notifies, subscribes)


def _assert_in_dialog(
    notifies: list[Traced], subscribes: list[Traced], answers: dict[str | None, Traced]
) -> None:
    """RFC 6665 4.2.2 / RFC 3261 12.2.1.1: each NOTIFY in its SUBSCRIBE's dialog."""
    by_call: dict[str | None, list[Traced]] = {}
    for notify in notifies:
        by_call.setdefault(notify.header("Call-ID"), []).append(notify)
    first = {m.header("Call-ID"): m for m in reversed(subscribes)}
    assert set(by_call) == set(first), describe(notifies)
    for call_id, dialog in by_call.items():
        subscribe, ok = first[call_id], answers[call_id]
        for notify in dialog:
            context = describe([subscribe, ok, notify])
            assert notify.tag("From") == ok.tag("To"), context
            assert notify.tag("To") == subscribe.tag("From"), context
            target = (subscribe.header("Contact") or "").strip("<>")
            assert notify.first_line == f"NOTIFY {target} SIP/2.0", context
        cseqs = [n.cseq for n in dialog]
        assert cseqs == sorted(set(cseqs)), f"CSeq not increasing: {cseqs}\n{describe(dialog)}"
        states = [n.header("Subscription-State") or "" for n in dialog]
        assert all(s.startswith("active;expires=") for s in states[:-1]), states
        assert states[-1].startswith("terminated"), states


def _assert_lanscape(notifies: list[Traced], subscribes: list[Traced]) -> None:
    """The form of the captured exchange: a new request each time, to the
    subscriber's Contact (To without a tag), from the registrar."""
    contact = subscribes[0].header("Contact")
    assert contact is not None
    subscription_calls = {m.header("Call-ID") for m in subscribes}
    call_ids = [n.header("Call-ID") for n in notifies]
    assert len(set(call_ids)) == len(call_ids), describe(notifies)
    for notify in notifies:
        context = describe([notify])
        assert notify.header("Call-ID") not in subscription_calls, context
        assert re.fullmatch(r"<sip:Registrar@example\.com>;tag=\S+", notify.header("From") or "")
        assert notify.header("To") == contact, context
        assert notify.header("Contact") == "<sip:Registrar@example.com>", context
        assert notify.header("Subscription-State") is None, context
        assert notify.first_line == f"NOTIFY {contact[1:-1]} SIP/2.0", context


# -- baresip watches a buddy through the presence package --------------------------------


@pytest.fixture(scope="session")
def baresip() -> str:
    """The baresip binary (Debian package baresip)."""
    path = shutil.which("baresip")
    if path is None:
        message = "baresip (Debian package baresip) is not installed"
        if os.environ.get("CENTREX_TEST_STRICT") == "1":
            pytest.fail(message + " and CENTREX_TEST_STRICT=1", pytrace=False)
        pytest.skip(message)
    return path


#: Longest a baresip run may last (its own -t), and how long to wait for a change.
BARESIP_QUIT_AFTER_S = 60
BARESIP_SEES_WITHIN_S = 10.0


class Baresip:
    """One headless baresip with a config dir of its own, driven over ctrl_tcp."""

    def __init__(self, binary: str, root: Path, server: CentrexServer, user: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.sip_port = pick_free_port()
        self.ctrl_port = pick_free_port()
        # presence.so after contact.so: it subscribes to the contacts loaded
        # by then that carry ;presence=p2p (baresip 1.0's marker).
        (root / "config").write_text(
            "\n".join(
                [
                    "poll_method\t\tepoll",
                    f"sip_listen\t\t{HOST}:{self.sip_port}",
                    "module_path\t\t/usr/lib/baresip/modules",
                    "module\t\t\tg711.so",
                    "module_app\t\taccount.so",
                    "module_app\t\tcontact.so",
                    "module_app\t\tpresence.so",
                    "module_app\t\tmenu.so",
                    "module_app\t\tctrl_tcp.so",
                    f"ctrl_tcp_listen\t\t{HOST}:{self.ctrl_port}",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        outbound = f"sip:{HOST}:{server.port};transport=udp"
        (root / "accounts").write_text(
            f'<sip:{user}@example.com;transport=udp>;auth_pass=unused;outbound="{outbound}";'
            "regint=60;pubint=0\n",
            encoding="utf-8",
        )
        (root / "contacts").write_text('"Bob" <sip:1002@example.com>;presence=p2p\n')
        self.stdout_path = root / "baresip.stdout"
        with self.stdout_path.open("wb") as out:
            self.process = subprocess.Popen(
                [binary, "-f", str(root), "-t", str(BARESIP_QUIT_AFTER_S)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
        self.ctrl: socket.socket | None = None

    def output(self) -> str:
        text = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        return re.sub(r"\x1b\[[0-9;]*m", "", text)

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + 10
        while self.ctrl is None:
            if self.process.poll() is not None:
                pytest.fail(f"baresip exited {self.process.returncode}:\n{self.output()}")
            try:
                self.ctrl = socket.create_connection((HOST, self.ctrl_port), timeout=2)
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"baresip's ctrl_tcp never listened:\n{self.output()}")
                time.sleep(0.1)
        return self.ctrl

    def command(self, name: str) -> str:
        """Run a baresip command over ctrl_tcp (a JSON netstring); its text answer."""
        ctrl = self._connect()
        body = json.dumps({"command": name, "params": "", "token": name}).encode()
        ctrl.sendall(str(len(body)).encode() + b":" + body + b",")
        buffer = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ctrl.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = ctrl.recv(65535)
            except TimeoutError:
                break
            if not chunk:
                break
            buffer += chunk
            # Netstrings: "<len>:<json>,"; events may come too, skip them.
            while (colon := buffer.find(b":")) > 0:
                size = int(buffer[:colon])
                if len(buffer) < colon + 1 + size + 1:
                    break
                payload = json.loads(buffer[colon + 1 : colon + 1 + size])
                buffer = buffer[colon + 1 + size + 1 :]
                if payload.get("response") and payload.get("token") == name:
                    return re.sub(r"\x1b\[[0-9;]*m", "", str(payload.get("data", "")))
        pytest.fail(f"baresip did not answer {name!r} over ctrl_tcp:\n{self.output()}")

    def buddy_status(self) -> str:
        """What baresip shows for Bob: Online, Offline, Unknown, ..."""
        listing = self.command("contacts")
        found = re.search(r"(\w[\w ]*?)\s+Bob <sip:1002@example\.com>", listing)
        assert found is not None, f"Bob is not in baresip's contacts:\n{listing}"
        return found.group(1).strip().split()[-1]

    def wait_status(self, status: str, what: str) -> None:
        deadline = time.monotonic() + BARESIP_SEES_WITHIN_S
        seen = self.buddy_status()
        while seen != status:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"baresip shows Bob {seen!r}, not {status!r}, {BARESIP_SEES_WITHIN_S} s "
                    f"after {what}\n----- baresip output:\n{self.output()}",
                    pytrace=False,
                )
            time.sleep(0.2)
            seen = self.buddy_status()

    def wait_output(self, text: str, timeout: float = BARESIP_SEES_WITHIN_S) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"baresip did not print {text!r}:\n{self.output()}", pytrace=False)
            time.sleep(0.1)

    def stop(self) -> None:
        if self.ctrl is not None:
            self.ctrl.close()
            self.ctrl = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def make_baresip(
    baresip: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[CentrexServer, str], Baresip]]:
    made: list[Baresip] = []

    def make(server: CentrexServer, user: str) -> Baresip:
        phone = Baresip(baresip, tmp_path / f"baresip{len(made)}", server, user)
        made.append(phone)
        return phone

    yield make
    for phone in made:
        phone.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(f"\n===== baresip {phone.root} =====\n{phone.output()}")


def _register(peer: wire.UdpPeer, server: CentrexServer, user: str, expires: int) -> None:
    peer.send(
        wire.register(server.port, user, transport="udp", local_port=peer.port, expires=expires)
    )
    answer = wire.final_answer(peer, 5.0)
    assert answer is not None and wire.status_line(answer).startswith("SIP/2.0 200 "), answer


def test_baresip_sees_a_buddy_go_online_and_offline_through_the_presence_package(
    make_server: Callable[..., CentrexServer],
    make_baresip: Callable[[CentrexServer, str], Baresip],
) -> None:
    server = make_server(users=USERS)
    alice = make_baresip(server, "1001")
    alice.wait_output("200 OK")  # registered
    alice.wait_status("Offline", "baresip subscribed (1002 not registered)")

    with wire.UdpPeer(server.port) as bob:
        _register(bob, server, "1002", 60)
        alice.wait_status("Online", "1002 registered")
        _register(bob, server, "1002", 0)
        alice.wait_status("Offline", "1002 unregistered")
    alice.wait_output("changed status from Online to Offline")
    alice.stop()
    assert server.stop() == 0, f"graceful stop failed:\n{server.log()}"

    trace = read_trace(server)
    subscribes = [
        m for m in trace if not m.sent and m.method == "SUBSCRIBE" and m.port == alice.sip_port
    ]
    assert subscribes and all(m.header("Event") == "presence" for m in subscribes), describe(
        subscribes
    )
    assert subscribes[0].first_line.startswith("SUBSCRIBE sip:1002@example.com ")
    notifies = [m for m in trace if m.sent and m.method == "NOTIFY" and m.port == alice.sip_port]
    basics = [
        found.group(1)
        for m in notifies
        if m.header("Content-Type") == "application/pidf+xml"
        and (found := re.search(r"<basic>(\w+)</basic>", m.text))
    ]
    # closed (the first NOTIFY), open, closed; a refresh may repeat the last.
    collapsed = [b for i, b in enumerate(basics) if i == 0 or basics[i - 1] != b]
    assert collapsed[:3] == ["closed", "open", "closed"], describe(notifies)
    answered = [
        m.status
        for m in trace
        if not m.sent
        and m.status
        and m.port == alice.sip_port
        and (m.header("CSeq") or "").endswith("NOTIFY")
    ]
    assert answered and set(answered) == {200}, answered


def _next_notify(watcher: wire.UdpPeer, timeout: float) -> bytes | None:
    """The next NOTIFY to ``watcher`` within ``timeout`` s, answered 200 (other
    messages skipped)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        got = watcher.receive(left)
        if got is not None and got.startswith(b"NOTIFY "):
            watcher.send(wire.answer(got, "200 OK"))
            return got
    return None


def _reginfo_contacts(notify: bytes) -> list[tuple[str, str, str]]:
    """(state, event, uri) of each contact of a reginfo NOTIFY."""
    ns = "{urn:ietf:params:xml:ns:reginfo}"
    root = ET.fromstring(notify.split(b"\r\n\r\n", 1)[1])
    return [
        (c.get("state", ""), c.get("event", ""), c.findtext(f"{ns}uri", ""))
        for c in root.iter(f"{ns}contact")
    ]


def _reginfo_states(notify: bytes) -> tuple[str, str, str]:
    """(version, document state, registration state) of a reginfo NOTIFY."""
    ns = "{urn:ietf:params:xml:ns:reginfo}"
    root = ET.fromstring(notify.split(b"\r\n\r\n", 1)[1])
    registration = root.find(f"{ns}registration")
    assert registration is not None
    return root.get("version", ""), root.get("state", ""), registration.get("state", "")


def _subscribe_reg(watcher: wire.UdpPeer, aor: str) -> None:
    """An out-of-dialog SUBSCRIBE of 1001 (at ``watcher``) to ``aor``'s reg state."""
    headers = {
        "From": "<sip:1001@example.com>;tag=watch",
        "To": f"<{aor}>",
        "Contact": f"<sip:1001@{wire.HOST}:{watcher.port}>",
        "Event": "reg",
        "Accept": "application/reginfo+xml",
        "Expires": "600",
    }
    watcher.send(
        wire.request("SUBSCRIBE", aor, transport="udp", local_port=watcher.port, headers=headers)
    )


def test_a_reg_watcher_hears_of_every_contact_of_a_user_and_of_each_that_goes(
    make_server: Callable[..., CentrexServer],
) -> None:
    # RFC 3680: the full state lists every contact registered for the AOR
    # (a desk phone and a soft phone here, registered one after the other);
    # then each contact that comes, is unregistered or expires is a partial
    # NOTIFY naming it, with the next version, while the AOR stays
    # registered; the last one's makes the registration terminated.
    server = make_server(users=USERS, registrar={"min_expires": 1, "purge_interval_s": 1})
    with (
        wire.UdpPeer(server.port) as desk,
        wire.UdpPeer(server.port) as soft,
        wire.UdpPeer(server.port) as watcher,
    ):
        _register(watcher, server, "1001", 600)  # (without authentication, a
        # subscriber must be registered)
        _register(desk, server, "1002", 600)
        _register(soft, server, "1002", 600)
        _subscribe_reg(watcher, "sip:1002@example.com")
        full = _next_notify(watcher, 5.0)
        assert full is not None, server.log()
        assert _reginfo_states(full) == ("0", "full", "active"), full.decode()
        contact = f"sip:1002@{wire.HOST}:{{}};transport=udp"
        assert sorted(_reginfo_contacts(full)) == sorted(
            [
                ("active", "registered", contact.format(desk.port)),
                ("active", "registered", contact.format(soft.port)),
            ]
        ), full.decode()

        def told(version: int, state: str, *contacts: tuple[str, str, str]) -> None:
            partial = _next_notify(watcher, 5.0)
            assert partial is not None, f"no NOTIFY for version {version}\n{server.log()}"
            assert _reginfo_states(partial) == (str(version), "partial", state), partial.decode()
            assert _reginfo_contacts(partial) == list(contacts), partial.decode()

        _register(soft, server, "1002", 0)  # the desk phone keeps 1002 registered
        told(1, "active", ("terminated", "unregistered", contact.format(soft.port)))
        _register(soft, server, "1002", 2)
        told(2, "active", ("active", "registered", contact.format(soft.port)))
        # Expired, and removed by the purge (every second here).
        told(3, "active", ("terminated", "expired", contact.format(soft.port)))
        _register(soft, server, "1002", 600)
        told(4, "active", ("active", "registered", contact.format(soft.port)))
        _register(desk, server, "1002", 0)
        told(5, "active", ("terminated", "unregistered", contact.format(desk.port)))
        _register(soft, server, "1002", 0)
        told(6, "terminated", ("terminated", "unregistered", contact.format(soft.port)))
        assert _next_notify(watcher, 0.5) is None


def _collect(peer: wire.UdpPeer, seconds: float) -> tuple[list[bytes], list[bytes]]:
    """(responses, NOTIFYs) that reach ``peer`` within ``seconds``; each NOTIFY answered 200."""
    responses: list[bytes] = []
    notifies: list[bytes] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        got = peer.receive(left)
        if got is None:
            break
        if got.startswith(b"NOTIFY "):
            peer.send(wire.answer(got, "200 OK"))
            notifies.append(got)
        elif not got.startswith(b"SIP/2.0 100 "):
            responses.append(got)
    return responses, notifies


def _subscribe_registrar(
    watcher: wire.UdpPeer, expires: int, call_id: str, *, cseq: int = 1, to_tag: str = ""
) -> None:
    """SUBSCRIBE of 1001 (at ``watcher``) to the user-available list."""
    to = "<sip:Registrar@example.com>" + (f";tag={to_tag}" if to_tag else "")
    headers = {
        "From": f"<sip:1001@example.com>;tag=from-{call_id}",
        "To": to,
        "Call-ID": call_id,
        "CSeq": f"{cseq} SUBSCRIBE",
        "Contact": f"<sip:1001@{wire.HOST}:{watcher.port}>",
        "Event": "user-available",
        "Expires": str(expires),
    }
    request = wire.request(
        "SUBSCRIBE",
        "sip:Registrar@example.com",
        transport="udp",
        local_port=watcher.port,
        headers=headers,
    )
    watcher.send(request)


def _subscribed(
    watcher: wire.UdpPeer, expires: int, call_id: str, *, cseq: int = 1, to_tag: str = ""
) -> list[bytes]:
    """SUBSCRIBE (``_subscribe_registrar``), its 200 checked: the NOTIFYs."""
    _subscribe_registrar(watcher, expires, call_id, cseq=cseq, to_tag=to_tag)
    (ok,), notifies = _collect(watcher, 1.0)
    assert wire.status_line(ok) == "SIP/2.0 200 OK", ok.decode()
    return notifies


def test_a_fetch_gets_the_list_and_leaves_the_phones_subscription_going(
    make_server: Callable[..., CentrexServer],
) -> None:
    # RFC 6665 4.4.3: Expires: 0 out of a dialog fetches the state once, in
    # its own dialog: the list, the last NOTIFY terminated. The subscription
    # the phone holds from the same Contact is not touched (it was ended
    # without a word); a new subscription that replaces it (a rebooted
    # phone) ends it silently: a refresh of the old dialog then gets 481.
    server = make_server(users=USERS)
    with wire.UdpPeer(server.port) as watcher:
        _register(watcher, server, "1001", 600)
        _subscribe_registrar(watcher, 600, "running")
        (ok,), (initial,) = _collect(watcher, 1.0)
        assert wire.status_line(ok) == "SIP/2.0 200 OK", ok.decode()
        to_tag = wire.headers(ok, "to")[0].rsplit("tag=", 1)[1]
        assert wire.headers(initial, "event") == ["user-available;param=1001|Alice"]

        notifies = _subscribed(watcher, 0, "fetch")
        assert [wire.headers(n, "call-id") for n in notifies] == [["fetch"]], notifies
        assert wire.headers(notifies[0], "event") == ["user-available;param=1001|Alice"]
        assert wire.headers(notifies[0], "subscription-state") == ["terminated;reason=timeout"]

        (refreshed,) = _subscribed(watcher, 600, "running", cseq=2, to_tag=to_tag)  # a refresh
        assert wire.headers(refreshed, "call-id") == ["running"]

        notifies = _subscribed(watcher, 600, "rebooted")
        assert [wire.headers(n, "call-id") for n in notifies] == [["rebooted"]], notifies
        assert wire.headers(notifies[0], "event") == ["user-available;param=1001|Alice"]
        _subscribe_registrar(watcher, 600, "running", cseq=3, to_tag=to_tag)
        (gone,), _ = _collect(watcher, 1.0)
        assert wire.status_line(gone).startswith("SIP/2.0 481"), gone.decode()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_refresh_sent_to_the_registrars_contact_reaches_the_server(
    make_server: Callable[..., CentrexServer], transport: str
) -> None:
    # RFC 6665 4.1.2.1 / RFC 3261 12.2.1.1: a phone sends its refreshes to the
    # remote target, the Contact of our 200. The domain (example.com here)
    # does not lead to this server, nor would its default port: the Contact
    # must name the server's own address, port and transport.
    server = make_server(users=USERS)
    with wire.open_peer(server.port, transport) as watcher:
        suffix = "" if transport == "udp" else f";transport={transport}"

        def subscribe(uri: str, cseq: int, to: str) -> bytes:
            headers = {
                "From": "<sip:1001@example.com>;tag=watcher",
                "To": to,
                "Call-ID": f"refresh-{transport}",
                "CSeq": f"{cseq} SUBSCRIBE",
                "Contact": f"<sip:1001@{HOST}:{watcher.port}{suffix}>",
                "Event": "user-available",
                "Expires": "600",
            }
            watcher.send(
                wire.request(
                    "SUBSCRIBE", uri, transport=transport, local_port=watcher.port, headers=headers
                )
            )
            deadline = time.monotonic() + 5.0
            while (left := deadline - time.monotonic()) > 0:
                got = watcher.receive(left)
                assert got is not None, f"no answer to the SUBSCRIBE to {uri}\n{server.log()}"
                if got.startswith(b"NOTIFY "):
                    watcher.send(wire.answer(got, "200 OK"))
                elif not got.startswith(b"SIP/2.0 100 "):
                    return got
            raise AssertionError("no answer")

        ok = subscribe("sip:Registrar@example.com", 1, "<sip:Registrar@example.com>")
        assert wire.status_line(ok) == "SIP/2.0 200 OK", ok.decode()
        (contact,) = wire.headers(ok, "contact")
        assert contact == f"<sip:Registrar@{HOST}:{server.port}{suffix}>", ok.decode()
        (to,) = wire.headers(ok, "to")
        refreshed = subscribe(contact[1:-1], 2, to)
        assert wire.status_line(refreshed) == "SIP/2.0 200 OK", refreshed.decode()
        assert wire.headers(refreshed, "expires") == ["600"], refreshed.decode()
