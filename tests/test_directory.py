"""The user directory (``[[users]]``)."""

from __future__ import annotations

import pytest

from centrex.config.settings import User
from centrex.directory import Directory

USERS = [
    User(user="Alice", description="front desk"),
    User(user="bob"),
    User(user="carol", enabled=False),
]


def test_find_ignores_case_by_default() -> None:
    found = Directory(USERS, case_sensitive=False).find("alice")
    assert found is not None and found.description == "front desk"


def test_find_is_exact_when_case_sensitive() -> None:
    directory = Directory(USERS, case_sensitive=True)
    assert directory.find("alice") is None
    assert directory.find("Alice") is not None


def test_disabled_user_counts_as_absent() -> None:
    directory = Directory(USERS, case_sensitive=False)
    assert directory.find("carol") is None
    assert "carol" not in directory
    found = directory.find("carol", include_disabled=True)
    assert found is not None and not found.enabled


def test_all_lists_enabled_users_in_configured_order() -> None:
    directory = Directory(USERS, case_sensitive=False)
    assert [u.user for u in directory.all()] == ["Alice", "bob"]
    assert [u.user for u in directory.all(include_disabled=True)] == ["Alice", "bob", "carol"]
    assert len(directory) == 2


def test_unknown_user_is_not_found() -> None:
    assert Directory(USERS, case_sensitive=False).find("dave") is None


def test_users_differing_only_in_case_collide_unless_case_sensitive() -> None:
    twins = [User(user="eve"), User(user="EVE")]
    with pytest.raises(ValueError, match="twice"):
        Directory(twins, case_sensitive=False)
    assert len(Directory(twins, case_sensitive=True)) == 2
