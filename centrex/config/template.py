"""The configuration file as text: ``centrex config init`` and ``centrex config show``.

Both are rendered from the models, so a new setting appears in the generated
file with its description as soon as it is added to ``settings.py``.
"""

from __future__ import annotations

import textwrap
from typing import Any

import tomlkit
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from tomlkit.items import AoT, Item, Table

from centrex.config.settings import Settings, User

MASK = "********"
_WIDTH = 88

_INIT_HEADER = """\
Centrex configuration (TOML).
Every setting is shown with its default value. Remove a key, or a whole table,
to use the default; an unknown key is an error, so a typo is caught at startup."""

_SHOW_HEADER = """\
Centrex settings in effect (secrets masked)."""

_EXAMPLE_USER = User(user="1001", description="Reception desk", password="change-me")


def render_default_config() -> str:
    """A complete configuration file with every setting at its default, described.

    Loading the result gives ``Settings()`` back.
    """
    return _render(Settings(), header=_INIT_HEADER, mask_secrets=False, effective=False)


def render_settings(settings: Settings) -> str:
    """``settings`` as a described TOML file, secrets replaced by ``********``.

    Settings whose empty value means "derived from the machine" (domains,
    instance id) carry the value in effect as a trailing comment.
    """
    return _render(settings, header=_SHOW_HEADER, mask_secrets=True, effective=True)


def _render(settings: Settings, *, header: str, mask_secrets: bool, effective: bool) -> str:
    doc = tomlkit.document()
    for line in header.splitlines():
        doc.add(tomlkit.comment(line))
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        if not isinstance(value, BaseModel):
            continue
        doc.add(tomlkit.nl())
        _add_comment(doc, info.description)
        table = _table(value, mask_secrets)
        doc.add(name, table)
        # tomlkit puts a blank line before a table header; the comment belongs to it.
        table.trivia.indent = ""
    if effective:
        _annotate_effective(doc, settings)
    _add_users(doc, settings.users, mask_secrets)
    return doc.as_string()


def _table(model: BaseModel, mask_secrets: bool) -> Table:
    table = tomlkit.table()
    nested: list[tuple[str, FieldInfo, BaseModel]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            nested.append((name, info, value))
            continue
        _add_comment(table, info.description)
        table.add(name, _value(value, info, mask_secrets))
    # Sub-tables ([registrar.database]) after every plain key of their parent.
    for name, info, value in nested:
        table.add(tomlkit.nl())
        _add_comment(table, info.description)
        sub = _table(value, mask_secrets)
        table.add(name, sub)
        sub.trivia.indent = ""
    return table


def _value(value: Any, info: FieldInfo, mask_secrets: bool) -> Any:
    if mask_secrets and value and _is_secret(info):
        return MASK
    return value


def _is_secret(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and extra.get("secret") is True


def _add_comment(container: tomlkit.TOMLDocument | Table, text: str | None) -> None:
    for line in textwrap.wrap(text or "", _WIDTH - 2):
        container.add(tomlkit.comment(line))


def _annotate_effective(doc: tomlkit.TOMLDocument, settings: Settings) -> None:
    server = doc["server"]
    assert isinstance(server, Table)
    if not settings.server.domains:
        domains = ", ".join(f'"{domain}"' for domain in settings.server.effective_domains())
        _trailing_comment(server, "domains", f"in effect: [{domains}]")
    if not settings.server.instance_id:
        _trailing_comment(
            server, "instance_id", f'in effect: "{settings.server.effective_instance_id()}"'
        )


def _trailing_comment(table: Table, key: str, text: str) -> None:
    item = table.item(key)
    if isinstance(item, Item):
        item.comment(text)


def _add_users(doc: tomlkit.TOMLDocument, users: list[User], mask_secrets: bool) -> None:
    doc.add(tomlkit.nl())
    _add_comment(doc, Settings.model_fields["users"].description)
    fields = User.model_fields
    width = max(len(name) for name in fields)
    for name, info in fields.items():
        doc.add(tomlkit.comment(f"  {name.ljust(width)}  {info.description}"))
    if not users:
        doc.add(tomlkit.comment("For example:"))
        example = tomlkit.document()
        example.add("users", _users_array([_EXAMPLE_USER], mask_secrets=False))
        for line in example.as_string().strip().splitlines():
            doc.add(tomlkit.comment(line))
        return
    array = _users_array(users, mask_secrets)
    doc.add("users", array)
    array[0].trivia.indent = ""


def _users_array(users: list[User], mask_secrets: bool) -> AoT:
    array = tomlkit.aot()
    for user in users:
        table = tomlkit.table()
        for name, info in User.model_fields.items():
            table.add(name, _value(getattr(user, name), info, mask_secrets))
        array.append(table)
    return array
