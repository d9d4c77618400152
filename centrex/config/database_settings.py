"""The ``[registrar.database]`` table: the shared registration database (issue 6)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DatabaseSettings(BaseModel):
    """``[registrar.database]``: the shared registration database (store = "database")."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    url: str = Field(
        default="",
        description=(
            "postgresql+asyncpg://user:password@host/db, mysql+aiomysql://..., "
            "or sqlite+aiosqlite:///file"
        ),
        json_schema_extra={"secret": True},
    )
    migrate_on_start: bool = Field(
        default=False, description="create or upgrade the schema at start (else `centrex db init`)"
    )
    retry_after_s: int = Field(
        default=30, ge=1, description="Retry-After of the 503 when a REGISTER cannot be stored"
    )
