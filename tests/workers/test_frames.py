"""What the workers tell each other, and which worker a branch or connection is."""

from __future__ import annotations

from pathlib import Path

import pytest

from centrex.workers.frames import (
    CHANGE,
    MESSAGE,
    FrameError,
    branch_tag,
    encode,
    first_connection_id,
    owner_of_branch,
    owner_of_connection,
    split,
    worker_path,
    worker_paths,
)


def test_frames_split_whole_and_keep_the_start_of_the_next() -> None:
    one = encode(MESSAGE, ("udp", "192.0.2.1", 5060, None, b"SIP/2.0 200 OK\r\n\r\n"))
    two = encode(CHANGE, ("sip:alice@example.com", [], ("b1",)))
    buffer = bytearray(one + two[:7])
    assert split(buffer) == [(MESSAGE, ("udp", "192.0.2.1", 5060, None, b"SIP/2.0 200 OK\r\n\r\n"))]
    assert bytes(buffer) == two[:7]
    buffer += two[7:]
    assert split(buffer) == [(CHANGE, ("sip:alice@example.com", [], ("b1",)))]
    assert buffer == bytearray()


@pytest.mark.parametrize(
    "data",
    [
        (0).to_bytes(4, "big"),  # no kind
        (5 * 1024 * 1024).to_bytes(4, "big") + b"\x01",  # larger than any frame of ours
        (2).to_bytes(4, "big") + b"\x63" + b"N",  # a kind no worker sends
        (3).to_bytes(4, "big") + b"\x01" + b"\xff\xff",  # not marshal
    ],
)
def test_a_frame_no_worker_sends_is_refused(data: bytes) -> None:
    with pytest.raises(FrameError):
        split(bytearray(data))


def test_branches_name_their_worker_only_with_several() -> None:
    assert branch_tag(0, 1) == ""
    assert owner_of_branch("z9hG4bKcxab12cd34ef56.1f", 1) is None
    tag = branch_tag(1, 2)
    assert owner_of_branch("z9hG4bKcxab12cd34ef56.1f" + tag, 2) == 1
    assert owner_of_branch("z9hG4bKpn0011223344556677" + branch_tag(0, 2), 2) == 0
    # Not ours (a phone's branch with a dash), or a worker that does not exist.
    assert owner_of_branch("z9hG4bK-1", 2) is None
    assert owner_of_branch("z9hG4bKcxab.1f-7", 2) is None
    assert owner_of_branch(None, 2) is None


def test_connection_ids_tell_their_worker() -> None:
    for count in (1, 2, 3):
        for index in range(count):
            first, step = first_connection_id(index, count)
            ids = [first + step * n for n in range(5)]
            assert all(i > 0 for i in ids)
            assert {owner_of_connection(i, count) for i in ids} == {index}
    assert first_connection_id(0, 1) == (1, 1)  # 1, 2, 3... as with one process


def test_worker_files(tmp_path: Path) -> None:
    bans = tmp_path / "bans.json"
    assert worker_path(bans, 0) == bans
    assert worker_path(bans, 2) == tmp_path / "bans.w2.json"
    (tmp_path / "bans.w2.json").write_text("{}")
    (tmp_path / "bans.wx.json").write_text("{}")
    assert worker_paths(bans) == [bans, tmp_path / "bans.w2.json"]
