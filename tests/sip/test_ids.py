"""Tags and branches come from a pool of kernel random bytes: unique, and
never shared between a server and a process it forks."""

from __future__ import annotations

import os

from centrex.sip.ids import token_hex


def test_tokens_have_the_asked_length_and_do_not_repeat() -> None:
    tokens = [token_hex(8) for _ in range(20_000)]  # several pool refills
    assert all(len(t) == 16 and int(t, 16) >= 0 for t in tokens)
    assert len(set(tokens)) == len(tokens)
    assert len(token_hex(5000)) == 10_000  # larger than the pool


def test_a_forked_child_does_not_hand_out_its_parents_next_tokens() -> None:
    token_hex(8)  # the pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, token_hex(8).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != token_hex(8)
