"""Credentials stored as HA1 per realm and algorithm; the users file edits."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass

import pytest

from centrex.auth.credentials import (
    Credentials,
    UserFileError,
    add_user,
    hash_password,
    set_password,
)
from centrex.config.settings import User


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_hash_password_gives_ha1_for_both_algorithms_and_no_password() -> None:
    record = hash_password("1001", "example.com", "s3cret")
    assert record == {
        "realm": "example.com",
        "md5": md5("1001:example.com:s3cret"),
        "sha256": sha256("1001:example.com:s3cret"),
    }
    assert "s3cret" not in str(record)


def test_lookup_finds_the_ha1_of_a_user_realm_and_algorithm() -> None:
    store = Credentials()
    store.add_record("1001", hash_password("1001", "example.com", "pw"))
    assert store.lookup("1001", "example.com", "MD5") == md5("1001:example.com:pw")
    assert store.lookup("1001", "example.com", "SHA-256") == sha256("1001:example.com:pw")
    assert store.lookup("1001", "example.org", "MD5") is None
    assert store.lookup("1002", "example.com", "MD5") is None
    assert store.lookup("1001", "example.com", "SHA-512-256") is None


def test_lookup_ignores_user_name_case_unless_case_sensitive() -> None:
    loose, strict = Credentials(), Credentials(case_sensitive=True)
    for store in (loose, strict):
        store.add_password("Alice", "example.com", "pw")
    assert loose.lookup("alice", "example.com", "MD5") is not None
    assert strict.lookup("alice", "example.com", "MD5") is None
    record = loose.find("ALICE", "example.com")
    assert record is not None and record.user == "Alice"


def test_a_value_that_is_not_a_hash_is_refused() -> None:
    with pytest.raises(ValueError):
        Credentials().add("1001", "example.com", md5="not-hex")
    with pytest.raises(ValueError):
        Credentials().add("1001", "example.com", sha256="0" * 32)


def test_plain_password_from_the_config_is_hashed_for_every_realm_with_a_warning() -> None:
    users = [User(user="1001", password="s3cr3t"), User(user="1002")]
    store, warnings = Credentials.from_users(users, ["example.com", "example.org"])
    assert store.lookup("1001", "example.com", "SHA-256") == sha256("1001:example.com:s3cr3t")
    assert store.lookup("1001", "example.org", "MD5") == md5("1001:example.org:s3cr3t")
    assert store.find("1002", "example.com") is None
    assert len(warnings) == 1
    assert "users[0]" in warnings[0] and "plain text" in warnings[0]
    assert "s3cr3t" not in warnings[0]


def test_disabled_user_gets_no_credentials() -> None:
    store, _ = Credentials.from_users([User(user="1001", password="pw", enabled=False)], ["r"])
    assert len(store) == 0


@dataclass
class HashedUser:
    """A ``[[users]]`` entry with the keys the config will gain."""

    user: str
    password: str = ""
    enabled: bool = True
    realm: str = ""
    ha1_md5: str = ""
    ha1_sha256: str = ""


def test_stored_hashes_count_for_their_realm_alone() -> None:
    record = hash_password("1001", "example.com", "pw")
    entry = HashedUser(
        "1001", realm="example.com", ha1_md5=record["md5"], ha1_sha256=record["sha256"]
    )
    store, warnings = Credentials.from_users([entry], ["example.com"])
    assert warnings == []
    store, warnings = Credentials.from_users([entry], ["example.com", "example.org"])
    assert store.lookup("1001", "example.com", "MD5") == record["md5"]
    assert store.find("1001", "example.org") is None
    # A phone of 1001 in example.org is refused at every REGISTER: said at start.
    (warning,) = warnings
    assert "users[0] (1001)" in warning and "cannot authenticate in example.org" in warning
    assert '[auth] realm = "example.com"' in warning


def test_hashes_without_a_realm_or_malformed_are_ignored_with_a_warning() -> None:
    entries = [
        HashedUser("1001", ha1_md5="0" * 32),
        HashedUser("1002", realm="example.com", ha1_md5="xyz"),
    ]
    store, warnings = Credentials.from_users(entries, ["example.com"])
    assert len(store) == 0
    assert len(warnings) == 2
    assert "users[0]" in warnings[0] and "users[1]" in warnings[1]
    # The key at fault, and the command that mends it.
    assert "ha1_md5" in warnings[1] and "centrex user passwd 1002" in warnings[1]


USERS_FILE = """\
# The people of the office.
[server]
domains = ["example.com"]

[[users]]
user = "1001"  # reception
description = "Reception desk"
password = "plain"

# The boss
[[users]]
user = "1002"
"""


def test_set_password_writes_hashes_removes_the_password_and_keeps_comments() -> None:
    text = set_password(USERS_FILE, "1001", "example.com", "n3w")
    assert "# The people of the office." in text
    assert "# reception" in text and "# The boss" in text
    data = tomllib.loads(text)
    entry = data["users"][0]
    assert "password" not in entry
    assert entry["realm"] == "example.com"
    assert entry["ha1_md5"] == md5("1001:example.com:n3w")
    assert entry["ha1_sha256"] == sha256("1001:example.com:n3w")
    assert entry["description"] == "Reception desk"
    assert data["users"][1] == {"user": "1002"}
    assert "n3w" not in text


def test_set_password_hashes_with_the_user_name_as_written_in_the_file() -> None:
    text = set_password('[[users]]\nuser = "Alice"\n', "alice", "r", "pw")
    assert tomllib.loads(text)["users"][0]["ha1_md5"] == md5("Alice:r:pw")


def test_set_password_of_an_unknown_user_or_empty_password_is_an_error() -> None:
    with pytest.raises(UserFileError, match="1003"):
        set_password(USERS_FILE, "1003", "example.com", "pw")
    with pytest.raises(UserFileError):
        set_password(USERS_FILE, "1001", "example.com", "")


def test_add_user_appends_an_entry_with_hashes_only() -> None:
    text = add_user(USERS_FILE, "1003", "example.com", "pw", description="Warehouse")
    data = tomllib.loads(text)
    assert data["users"][2] == {
        "user": "1003",
        "description": "Warehouse",
        "realm": "example.com",
        "ha1_md5": md5("1003:example.com:pw"),
        "ha1_sha256": sha256("1003:example.com:pw"),
    }
    assert "# The boss" in text
    User(**{k: v for k, v in data["users"][2].items() if k in ("user", "description")})


def test_add_user_to_a_file_without_users_or_with_inline_tables() -> None:
    first = tomllib.loads(add_user("# empty\n", "1001", "r", "pw"))
    assert first["users"][0]["user"] == "1001"
    inline = tomllib.loads(add_user('users = [{user = "1001"}]\n', "1002", "r", "pw"))
    assert [u["user"] for u in inline["users"]] == ["1001", "1002"]


@pytest.mark.parametrize("name", ["1001", "1002"])
def test_add_user_refuses_a_name_already_used(name: str) -> None:
    with pytest.raises(UserFileError, match="already exists"):
        add_user(USERS_FILE, name, "example.com", "pw")


def test_add_user_refuses_a_duplicate_differing_only_in_case() -> None:
    text = '[[users]]\nuser = "alice"\n'
    with pytest.raises(UserFileError):
        add_user(text, "Alice", "r", "pw")
    assert "Alice" in add_user(text, "Alice", "r", "pw", case_sensitive=True)


@pytest.mark.parametrize("name", ["", "a b", "a@b", "x\n"])
def test_add_user_refuses_a_name_that_is_not_a_sip_user(name: str) -> None:
    with pytest.raises(UserFileError):
        add_user(USERS_FILE, name, "example.com", "pw")


def test_add_user_refuses_control_characters_in_the_description() -> None:
    with pytest.raises(UserFileError):
        add_user(USERS_FILE, "1003", "example.com", "pw", description="a\nb")
