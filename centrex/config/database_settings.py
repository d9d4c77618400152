"""The ``[registrar.database]`` table: the shared registration database (issue 6)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SIP_ADDRESS = re.compile(r"^sips?:[^@\s;]+(;[^@\s]*)?$")


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
    staleness_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "longest another instance's change takes to reach this instance's cache "
            "(the change poll interval; PostgreSQL also notifies at once)"
        ),
    )
    instance_address: str = Field(
        default="",
        description=(
            'SIP URI the other instances reach this one at, e.g. "sip:10.0.0.1:5060"; '
            "empty = the first tcp listen address (else the first one)"
        ),
    )
    instance_down_after_s: float = Field(
        default=5.0,
        ge=3,
        description=(
            "an instance whose heartbeat (written every second) is this old is down: "
            "calls to the phones it holds are answered 480 at once"
        ),
    )

    @field_validator("instance_address")
    @classmethod
    def _sip_address(cls, value: str) -> str:
        if value and not _SIP_ADDRESS.match(value):
            raise ValueError(
                'must be a SIP URI without a user, e.g. "sip:10.0.0.1:5060" or '
                '"sip:10.0.0.1:5060;transport=tcp", or empty for the first listen address'
            )
        return value
