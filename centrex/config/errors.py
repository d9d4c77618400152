"""The errors of the configuration package."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration file cannot be used.

    ``problems`` holds one line per problem, each naming the file, the key, the
    value and what is expected; ``str(error)`` is those lines joined.
    """

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.path = path


class SettingProblem(ValueError):
    """A validator's complaint about a key other than the one pydantic reports.

    Cross-field checks run on a whole table; ``loc`` names the key within the
    location pydantic reports (a table, or a list for a per-item check), so the
    message can point at the setting to change. ``fix`` replaces the generic
    "fix the value or remove the key" advice when that would mislead.
    """

    def __init__(
        self,
        loc: tuple[str | int, ...],
        value: object,
        expected: str,
        fix: str | None = None,
    ) -> None:
        # The key is in the text so the error reads well outside the loader too.
        super().__init__(f"{format_key(loc)}: {expected}")
        self.loc = loc
        self.value = value
        self.expected = expected
        self.fix = fix


def format_key(loc: tuple[str | int, ...]) -> str:
    """A pydantic location as the key path a user reads: ``users[2].password``."""
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key
