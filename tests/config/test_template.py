"""The generated files: `centrex config init` and `centrex config show`."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from centrex.config import (
    Settings,
    User,
    load_settings,
    parse_settings,
    render_default_config,
    render_settings,
)


def _is_table(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def table_models() -> dict[str, type[BaseModel]]:
    """Every table by its dotted name, sub-tables ([registrar.database]) included."""
    models: dict[str, type[BaseModel]] = {}
    for name, info in Settings.model_fields.items():
        if _is_table(info.annotation):
            assert isinstance(info.annotation, type)
            models[name] = info.annotation
            for sub, sub_info in info.annotation.model_fields.items():
                if _is_table(sub_info.annotation):
                    assert isinstance(sub_info.annotation, type)
                    models[f"{name}.{sub}"] = sub_info.annotation
    return models


def table_descriptions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in table_models():
        parent, _, sub = name.partition(".")
        info = Settings.model_fields[parent]
        if sub:
            assert isinstance(info.annotation, type)
            info = info.annotation.model_fields[sub]
        out[name] = info.description
    return out


def plain_keys(model: type[BaseModel]) -> list[str]:
    """The keys written in a table itself (its sub-tables come after them)."""
    return [k for k, info in model.model_fields.items() if not _is_table(info.annotation)]


def test_default_config_loads_back_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "centrex.toml"
    path.write_text(render_default_config(), encoding="utf-8")
    assert load_settings(path) == Settings()


def test_default_config_writes_every_table_and_key() -> None:
    data = tomllib.loads(render_default_config())
    assert data == Settings().model_dump(exclude={"users"})
    # Every key written out, not left to the defaults:
    for name, model in table_models().items():
        table = data
        for part in name.split("."):
            table = table[part]
        subs = [k for k in model.model_fields if k not in plain_keys(model)]
        assert list(table) == plain_keys(model) + subs


def test_every_key_is_preceded_by_its_description() -> None:
    lines = render_default_config().splitlines()
    tables = table_models()
    descriptions = table_descriptions()
    table_name = ""
    for index, line in enumerate(lines):
        if line.startswith("[") and not line.startswith("[["):
            table_name = line.strip("[]")
            assert lines[index - 1] == f"# {descriptions[table_name]}"
        elif " = " in line and not line.startswith("#"):
            key = line.split(" = ", 1)[0]
            description = tables[table_name].model_fields[key].description
            assert description is not None
            comment: list[str] = []
            back = index - 1
            while lines[back].startswith("# "):
                comment.insert(0, lines[back][2:])
                back -= 1
            assert " ".join(comment).endswith(description), (key, comment)


def test_default_config_shows_a_commented_user_example() -> None:
    text = render_default_config()
    assert "# [[users]]" in text
    assert '# user = "1001"' in text
    uncommented = "\n".join(line.removeprefix("# ") for line in text.splitlines())
    example = tomllib.loads(uncommented.split("For example:", 1)[1])
    assert User.model_validate(example["users"][0]).user == "1001"


def test_default_config_does_not_depend_on_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    first = render_default_config()
    monkeypatch.setattr(socket, "gethostname", lambda: "elsewhere")
    assert render_default_config() == first


def test_settings_render_masks_passwords() -> None:
    settings = Settings(
        users=[User(user="1001", password="hunter2"), User(user="1002", description="Bob")]
    )
    text = render_settings(settings)
    assert "hunter2" not in text
    shown = parse_settings(text)
    assert shown.users[0].password == "********"
    assert shown.users[1].password == ""
    assert shown.model_copy(update={"users": settings.users}) == settings


def test_settings_render_shows_current_values() -> None:
    settings = parse_settings(
        '[server]\ndomains = ["example.com"]\ninstance_id = "a"\n'
        '[network]\nlisten = ["udp:[::]:5060"]\n[logging]\nlevel = "debug"\n'
    )
    assert parse_settings(render_settings(settings)) == settings


def test_settings_render_shows_the_host_name_in_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "pbx7")
    text = render_settings(Settings())
    assert 'domains = [] # in effect: ["pbx7"]' in text
    assert 'instance_id = "" # in effect: "pbx7"' in text
    assert parse_settings(text) == Settings()
