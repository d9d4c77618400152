"""Calls through Centrex between real sipp phones (RFC 3261 section 16, the proxy).

The callee registers first (its scenario logs REGISTERED on the 200 OK), then
the caller places the call; both sipp processes must exit 0, which means every
message each expected arrived, in order.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Phones

TRANSPORTS = ["udp", "tcp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_to_registered_phone_rings_answers_and_hangs_up_through_the_proxy(
    phones: Phones, transport: str
) -> None:
    # Callee: REGISTER, 180, 200 (copying Record-Route), ACK, BYE -> 200.
    callee = phones.start("uas_register.xml", service="1002", transport=transport)
    callee.wait_logged("REGISTERED")
    # Caller: INVITE, 100?, 180, 200 with Record-Route; ACK and BYE along the
    # route set to the callee's Contact.
    caller = phones.start("uac_call.xml", service="1002", transport=transport)
    phones.finish(caller, callee)


def test_cancel_while_ringing_reaches_the_callee_and_its_487_reaches_the_caller(
    phones: Phones,
) -> None:
    # RFC 3261 16.10: the proxy answers the CANCEL with 200 and cancels its
    # branch; the callee's 487 is relayed, the proxy ACKs it hop by hop.
    callee = phones.start("uas_cancel.xml", service="1002")
    callee.wait_logged("REGISTERED")
    caller = phones.start("uac_cancel.xml", service="1002")
    phones.finish(caller, callee)


def test_busy_callee_486_is_relayed_and_acked_hop_by_hop(phones: Phones) -> None:
    # RFC 3261 16.7: the only final response is forwarded; 17.1.1.3: the ACK
    # for a non-2xx is the proxy's own, so the callee gets it from Centrex and
    # the caller's ACK is absorbed by Centrex.
    callee = phones.start("uas_busy.xml", service="1002")
    callee.wait_logged("REGISTERED")
    caller = phones.start("uac_busy.xml", service="1002")
    phones.finish(caller, callee)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_to_directory_user_with_no_registration_gets_480(
    phones: Phones, transport: str
) -> None:
    # 1001 is in [[users]] but nobody registered it.
    phones.run("uac_offline.xml", service="1001", transport=transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_to_user_neither_in_directory_nor_registered_gets_404(
    phones: Phones, transport: str
) -> None:
    phones.run("uac_unknown.xml", service="9999", transport=transport)


def test_call_forks_to_every_registered_phone_and_cancels_the_losing_branch(
    phones: Phones,
) -> None:
    # RFC 3261 16.6/16.7: both contacts of 1002 get the INVITE; the first 2xx
    # is relayed and the other branch, still ringing, gets a CANCEL (16.7 step
    # 10). Only the phone that answered sees the caller's ACK and BYE.
    answering = phones.start("uas_register.xml", service="1002", name="answering-phone")
    ringing = phones.start("uas_cancel.xml", service="1002", name="ringing-phone")
    answering.wait_logged("REGISTERED")
    ringing.wait_logged("REGISTERED")
    caller = phones.start("uac_call_forked.xml", service="1002")
    phones.finish(caller, answering, ringing)
