"""Who is challenged, and what each kind of answer gets (RFC 3261 22, RFC 7616, RFC 8760)."""

from __future__ import annotations

import pytest

from centrex.auth.challenge import (
    Authenticated,
    Challenge,
    Exempt,
    Forbidden,
    Trusted,
)
from centrex.auth.credentials import Credentials
from centrex.sip.fields import AuthParams
from centrex.sip.message import Response
from centrex.sip.parser import parse_message

from .helpers import (
    DOMAIN,
    PHONE_IP,
    T0,
    answer,
    authenticator,
    challenge_params,
    h,
    request,
)


def first_challenge(method: str = "REGISTER", **kwargs: str) -> Challenge:
    decision = authenticator().check(request(method, **kwargs), PHONE_IP, T0)
    assert isinstance(decision, Challenge)
    return decision


# -- challenges ---------------------------------------------------------------------


def test_register_without_credentials_gets_401_with_www_authenticate() -> None:
    challenge = first_challenge("REGISTER")
    assert challenge.status == 401
    assert [name for name, _ in challenge.headers] == ["WWW-Authenticate"] * 2
    assert not challenge.failed and not challenge.stale


@pytest.mark.parametrize("method", ["INVITE", "SUBSCRIBE", "MESSAGE", "REFER", "OPTIONS"])
def test_out_of_dialog_request_from_a_served_user_gets_407(method: str) -> None:
    challenge = first_challenge(method)
    assert challenge.status == 407
    assert [name for name, _ in challenge.headers] == ["Proxy-Authenticate"] * 2


def test_challenge_offers_sha256_first_then_md5_with_qop_auth() -> None:
    challenge = first_challenge("REGISTER")
    parsed = [AuthParams.parse(value) for _, value in challenge.headers]
    assert [p.get("algorithm") for p in parsed] == ["SHA-256", "MD5"]
    for p in parsed:
        assert p.is_digest
        assert p.get("realm") == DOMAIN
        assert p.get("qop") == "auth"
        assert p.get("stale") is None
    assert parsed[0].get("nonce") == parsed[1].get("nonce")
    assert 'qop="auth"' in challenge.headers[0][1]


def test_challenge_becomes_a_401_response_a_phone_can_read() -> None:
    req = request("REGISTER")
    challenge = first_challenge("REGISTER")
    response = parse_message(challenge.to_response(req, to_tag="t1").to_bytes())
    assert isinstance(response, Response)
    assert response.status == 401
    assert len(response.get_all("WWW-Authenticate")) == 2
    assert response.to_tag == "t1"


# -- successful clients ---------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_register_with_the_right_digest_is_authenticated(algorithm: str) -> None:
    auth = authenticator()
    challenge = auth.check(request("REGISTER"), PHONE_IP, T0)
    assert isinstance(challenge, Challenge)
    params = challenge_params(challenge, algorithm)
    decision = auth.check(answer("REGISTER", params, algorithm=algorithm), PHONE_IP, T0 + 1)
    assert decision == Authenticated("alice", DOMAIN, algorithm)


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_invite_with_the_right_proxy_authorization_is_authenticated(algorithm: str) -> None:
    auth = authenticator()
    challenge = auth.check(request("INVITE"), PHONE_IP, T0)
    assert isinstance(challenge, Challenge)
    params = challenge_params(challenge, algorithm)
    decision = auth.check(answer("INVITE", params, algorithm=algorithm), PHONE_IP, T0 + 1)
    assert decision == Authenticated("alice", DOMAIN, algorithm)


def test_client_may_reuse_a_nonce_with_increasing_nonce_counts() -> None:
    auth = authenticator()
    challenge = auth.check(request("REGISTER"), PHONE_IP, T0)
    assert isinstance(challenge, Challenge)
    params = challenge_params(challenge)
    for i, nc in enumerate(["00000001", "00000002", "00000005"]):
        decision = auth.check(answer("REGISTER", params, nc=nc), PHONE_IP, T0 + i)
        assert isinstance(decision, Authenticated)


def test_credentials_in_authorization_do_not_count_for_an_invite() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("INVITE"))
    decision = auth.check(answer("INVITE", params, header="Authorization"), PHONE_IP, T0)
    assert isinstance(decision, Challenge)
    assert decision.status == 407
    assert not decision.failed


def test_credentials_for_another_realm_are_ignored_and_ours_are_found() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("INVITE"))
    good = answer("INVITE", params)
    good.add(
        "Proxy-Authorization",
        'Digest username="x", realm="other.net", nonce="n", uri="sip:bob@example.com", '
        'response="00", qop=auth, nc=00000001, cnonce="c"',
        first=True,
    )
    assert isinstance(auth.check(good, PHONE_IP, T0), Authenticated)


# -- stale nonces and replays -------------------------------------------------------


def test_right_digest_with_an_expired_nonce_gets_stale_true() -> None:
    auth = authenticator(lifetime_s=60)
    params = challenge_params(first_challenge("REGISTER"))
    decision = auth.check(answer("REGISTER", params), PHONE_IP, T0 + 61)
    assert isinstance(decision, Challenge)
    assert decision.status == 401
    assert decision.stale and not decision.failed
    for _, value in decision.headers:
        parsed = AuthParams.parse(value)
        assert parsed.get("stale") == "true"
        assert parsed.get("nonce") != params["nonce"]
    # The client retries with the new nonce and gets in without a new password.
    retry = answer("REGISTER", challenge_params(decision))
    assert isinstance(auth.check(retry, PHONE_IP, T0 + 62), Authenticated)


def test_wrong_password_with_an_expired_nonce_is_not_stale() -> None:
    auth = authenticator(lifetime_s=60)
    params = challenge_params(first_challenge("REGISTER"))
    decision = auth.check(answer("REGISTER", params, password="guess"), PHONE_IP, T0 + 61)
    assert isinstance(decision, Challenge)
    assert not decision.stale and decision.failed


def test_forged_nonce_gets_a_plain_new_challenge_counted_as_failure() -> None:
    params = dict(challenge_params(first_challenge("REGISTER")))
    params["nonce"] = "A" * 43
    decision = authenticator().check(answer("REGISTER", params), PHONE_IP, T0)
    assert isinstance(decision, Challenge)
    assert decision.failed and not decision.stale
    assert decision.reason == "invalid nonce"


def test_replayed_nonce_count_is_refused() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("REGISTER"))
    captured = answer("REGISTER", params, nc="00000002")
    assert isinstance(auth.check(captured, PHONE_IP, T0), Authenticated)
    for nc in ["00000002", "00000001"]:
        replay = auth.check(answer("REGISTER", params, nc=nc), PHONE_IP, T0 + 1)
        assert isinstance(replay, Challenge)
        assert replay.reason == "nonce count reused"
        assert replay.stale  # the client knows the password: it may retry at once


def test_failed_guess_does_not_advance_the_nonce_count_of_the_real_client() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("REGISTER"))
    assert isinstance(auth.check(answer("REGISTER", params), PHONE_IP, T0), Authenticated)
    guess = answer("REGISTER", params, password="guess", nc="000000ff")
    assert isinstance(auth.check(guess, "198.51.100.66", T0 + 1), Challenge)
    following = answer("REGISTER", params, nc="00000002")
    assert isinstance(auth.check(following, PHONE_IP, T0 + 2), Authenticated)


def test_nonce_dropped_from_the_tracker_is_answered_stale() -> None:
    auth = authenticator(max_nonces=1)
    first = challenge_params(first_challenge("REGISTER"))
    assert isinstance(auth.check(answer("REGISTER", first), PHONE_IP, T0), Authenticated)
    challenge = auth.check(request("REGISTER", from_user="bob"), PHONE_IP, T0 + 1)
    assert isinstance(challenge, Challenge)
    second = challenge_params(challenge)
    bob = answer("REGISTER", second, user="bob", password="secret-b")
    assert isinstance(auth.check(bob, PHONE_IP, T0 + 1), Authenticated)
    again = auth.check(answer("REGISTER", first, nc="00000002"), PHONE_IP, T0 + 2)
    assert isinstance(again, Challenge)
    assert again.stale and not again.failed


# -- no enumeration ---------------------------------------------------------------------


def shape(challenge: Challenge) -> list[tuple[str, list[tuple[str, str]]]]:
    """Status-independent shape: header names, parameter names and every value but the nonce."""
    out = []
    for name, value in challenge.headers:
        parsed = AuthParams.parse(value)
        items = [(k, "<nonce>" if k == "nonce" else v) for k, v in parsed.params.items()]
        out.append((name, items))
    return out


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_unknown_user_and_wrong_password_get_the_same_answer(method: str) -> None:
    auth = authenticator()
    params = challenge_params(first_challenge(method))
    wrong = auth.check(answer(method, params, password="guess"), PHONE_IP, T0)
    unknown = auth.check(answer(method, params, user="mallory", password="guess"), PHONE_IP, T0)
    assert isinstance(wrong, Challenge) and isinstance(unknown, Challenge)
    assert wrong.status == unknown.status == (401 if method == "REGISTER" else 407)
    assert shape(wrong) == shape(unknown)
    assert [len(v) for _, v in wrong.headers] == [len(v) for _, v in unknown.headers]
    assert wrong.failed and unknown.failed
    assert (wrong.stale, unknown.stale) == (False, False)


def test_answer_for_an_algorithm_without_a_stored_hash_fails_like_a_wrong_password() -> None:
    store = Credentials()
    store.add("alice", DOMAIN, md5="0" * 32)  # only an MD5 hash
    auth = authenticator(store)
    params = challenge_params(first_challenge("REGISTER"))
    no_sha = auth.check(answer("REGISTER", params, algorithm="SHA-256"), PHONE_IP, T0)
    wrong = auth.check(answer("REGISTER", params, algorithm="MD5"), PHONE_IP, T0)
    assert isinstance(no_sha, Challenge) and isinstance(wrong, Challenge)
    assert no_sha.failed and shape(no_sha) == shape(wrong)
    assert no_sha.reason == "no hash for the algorithm"


@pytest.mark.parametrize(
    "credentials",
    [
        "Digest garbage",
        'Digest username="alice"',
        'Digest username="alice", realm="example.com", nonce="n", uri="sip:example.com", '
        'response="00"',
        "Basic YWxpY2U6c2VjcmV0",
    ],
)
def test_malformed_or_incomplete_credentials_get_a_new_challenge(credentials: str) -> None:
    req = request("REGISTER", extra=[f"Authorization: {credentials}"])
    decision = authenticator().check(req, PHONE_IP, T0)
    assert isinstance(decision, Challenge)
    assert decision.status == 401


def test_digest_without_qop_is_refused() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("REGISTER"), "MD5")
    ha1 = h("MD5", f"alice:{DOMAIN}:secret-a")
    value = h("MD5", f"{ha1}:{params['nonce']}:{h('MD5', 'REGISTER:sip:' + DOMAIN)}")
    creds = (
        f'Digest username="alice", realm="{DOMAIN}", nonce="{params["nonce"]}", '
        f'uri="sip:{DOMAIN}", response="{value}", algorithm=MD5'
    )
    decision = auth.check(request("REGISTER", extra=[f"Authorization: {creds}"]), PHONE_IP, T0)
    assert isinstance(decision, Challenge)
    assert decision.failed


def test_digest_uri_must_match_the_request_uri() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("INVITE"))
    # A response computed for another target cannot be used to call this one.
    other = answer(
        "INVITE", params, digest_uri="sip:bob@example.com", ruri="sip:+4930123@example.com"
    )
    decision = auth.check(other, PHONE_IP, T0)
    assert isinstance(decision, Challenge) and decision.failed
    assert decision.reason == "uri does not match the Request-URI"


def test_digest_uri_equal_as_a_sip_uri_is_accepted() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("REGISTER"))
    req = answer("REGISTER", params, digest_uri="sip:EXAMPLE.com", ruri="sip:example.com")
    assert isinstance(auth.check(req, PHONE_IP, T0), Authenticated)


def test_realm_must_be_ours() -> None:
    auth = authenticator()
    params = dict(challenge_params(first_challenge("REGISTER")))
    params["realm"] = "evil.example"
    decision = auth.check(answer("REGISTER", params), PHONE_IP, T0)
    assert isinstance(decision, Challenge)
    assert not decision.failed  # credentials for someone else's realm: just ask for ours


# -- identity ---------------------------------------------------------------------------


def test_invite_with_a_from_user_other_than_the_authenticated_one_is_forbidden() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("INVITE"))
    decision = auth.check(answer("INVITE", params, from_user="bob"), PHONE_IP, T0)
    assert isinstance(decision, Forbidden)
    assert decision.user == "alice"
    assert decision.to_response(request("INVITE"), to_tag="t").status == 403


def test_register_for_someone_elses_aor_is_forbidden() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("REGISTER"))
    req = answer("REGISTER", params, to=f"sip:bob@{DOMAIN}")
    decision = auth.check(req, PHONE_IP, T0)
    assert isinstance(decision, Forbidden)
    assert "To" in decision.reason


def test_a_third_party_register_of_the_users_own_aor_is_accepted() -> None:
    # RFC 3261 10.2: From is whoever is responsible for the registration; the
    # To, the AOR whose bindings change, is what must be the user's own.
    auth = authenticator()
    params = challenge_params(first_challenge("REGISTER"))
    req = answer("REGISTER", params, from_user="bob", to=f"sip:alice@{DOMAIN}")
    assert auth.check(req, PHONE_IP, T0) == Authenticated("alice", DOMAIN, "SHA-256")


def test_relax_from_match_does_not_let_a_user_register_someone_elses_aor() -> None:
    auth = authenticator(relax_from_match=True)
    params = challenge_params(first_challenge("REGISTER"))
    req = answer("REGISTER", params, to=f"sip:bob@{DOMAIN}")
    decision = auth.check(req, PHONE_IP, T0)
    assert isinstance(decision, Forbidden)
    assert "To" in decision.reason


def test_relax_from_match_accepts_a_different_from_user() -> None:
    auth = authenticator(relax_from_match=True)
    params = challenge_params(first_challenge("INVITE"))
    decision = auth.check(answer("INVITE", params, from_user="bob"), PHONE_IP, T0)
    assert decision == Authenticated("alice", DOMAIN, "SHA-256")


def test_the_callee_side_of_a_dialog_answers_as_the_user_it_was_called_as() -> None:
    # The From of its requests is the To its caller wrote ("bob" here); the
    # credentials asked for are those of the user the call was routed to.
    auth = authenticator()
    params = challenge_params(first_challenge("BYE"))
    bye = answer("BYE", params, from_user="bob")
    assert auth.check(bye, PHONE_IP, T0, as_user="alice") == Authenticated(
        "alice", DOMAIN, "SHA-256"
    )
    fresh = challenge_params(first_challenge("BYE"))
    decision = auth.check(answer("BYE", fresh, from_user="alice"), PHONE_IP, T0, as_user="carol")
    assert isinstance(decision, Forbidden)


def test_user_names_compare_without_case_by_default() -> None:
    auth = authenticator()
    params = challenge_params(first_challenge("INVITE"))
    decision = auth.check(answer("INVITE", params, from_user="ALICE"), PHONE_IP, T0)
    assert isinstance(decision, Authenticated)


def test_anonymous_from_is_not_compared_when_a_realm_is_demanded() -> None:
    auth = authenticator()
    req = request("INVITE", from_user="anonymous", from_domain="anonymous.invalid")
    assert isinstance(auth.check(req, PHONE_IP, T0), Exempt)
    challenge = auth.check(req, PHONE_IP, T0, realm=DOMAIN)
    assert isinstance(challenge, Challenge) and challenge.status == 407
    creds = answer("INVITE", challenge_params(challenge))
    creds.set("From", "<sip:anonymous@anonymous.invalid>;tag=x")
    assert isinstance(auth.check(creds, PHONE_IP, T0, realm=DOMAIN), Authenticated)


# -- not challenged -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_ack_and_cancel_are_never_challenged(method: str) -> None:
    decision = authenticator().check(request(method), PHONE_IP, T0)
    assert isinstance(decision, Exempt)


@pytest.mark.parametrize("method", ["INVITE", "BYE", "REFER", "MESSAGE"])
def test_request_in_a_verified_dialog_is_not_challenged(method: str) -> None:
    req = request(method, to_tag="abc")
    decision = authenticator().check(req, PHONE_IP, T0, in_dialog=True)
    assert decision == Exempt("in-dialog request")


@pytest.mark.parametrize("method", ["INVITE", "BYE", "MESSAGE", "REGISTER"])
def test_a_to_tag_alone_does_not_spare_the_challenge(method: str) -> None:
    # Anyone can write a To tag: without a dialog the caller verified, the
    # request is challenged like any other.
    decision = authenticator().check(request(method, to_tag="abc"), PHONE_IP, T0)
    assert isinstance(decision, Challenge)
    assert decision.status == (401 if method == "REGISTER" else 407)


def test_register_is_challenged_even_when_called_in_a_dialog() -> None:
    req = request("REGISTER", to_tag="abc")
    assert isinstance(authenticator().check(req, PHONE_IP, T0, in_dialog=True), Challenge)


def test_call_from_another_domain_to_a_served_user_is_not_challenged() -> None:
    req = request("INVITE", from_user="carol", from_domain="elsewhere.net")
    assert authenticator().check(req, "198.51.100.7", T0) == Exempt("domain not served")


def test_register_for_a_domain_not_served_is_left_to_the_registrar() -> None:
    req = request("REGISTER", ruri="sip:elsewhere.net", from_domain="elsewhere.net")
    assert isinstance(authenticator().check(req, PHONE_IP, T0), Exempt)


# -- trusted peers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "source"),
    [
        (["203.0.113.0/24"], "203.0.113.77"),
        (["203.0.113.5"], "203.0.113.5"),
        (["2001:db8:1::/48"], "2001:db8:1:2::9"),
        (["2001:db8:1::/48"], "[2001:db8:1::1]"),
        (["203.0.113.0/24"], "::ffff:203.0.113.9"),
    ],
)
def test_source_in_a_trusted_network_is_not_challenged(trusted: list[str], source: str) -> None:
    decision = authenticator(trusted=trusted).check(request("INVITE"), source, T0)
    assert isinstance(decision, Trusted)


@pytest.mark.parametrize("source", ["203.0.114.1", "2001:db8:2::1", "not-an-ip", ""])
def test_source_outside_the_trusted_networks_is_challenged(source: str) -> None:
    auth = authenticator(trusted=["203.0.113.0/24", "2001:db8:1::/48"])
    assert isinstance(auth.check(request("INVITE"), source, T0), Challenge)


def test_bad_trusted_entry_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        authenticator(trusted=["10.0.0.0/33"])
