"""The one settings class of lossforge, read from `LOSSFORGE_*` environment variables (and `.env`).

Built once at an entry point (the CLI, the app factory) and passed down; nothing else reads the
environment. Secrets are `SecretStr`: their repr is masked and they are unwrapped only where a
client is built. Placeholder secrets are refused rather than silently used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from discovery.archive import DEFAULT_DATABASE_URL, normalize_url

_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "changethis", "secret", "token", "xxx", "..."}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOSSFORGE_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        # `LOSSFORGE_API_TOKEN=` (as docker compose writes an unset variable) means unset.
        env_ignore_empty=True,
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the archive: a SQLite file (default) or PostgreSQL, e.g. "
        "postgresql://user@host:5432/lossforge.",
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token required on API writes; unset means writes are open."
    )
    api_read_auth: bool = Field(False, description="Require the API token on reads too.")
    host: str = Field("127.0.0.1", description="Address `lossforge serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `lossforge serve` binds.")
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("LOSSFORGE_RAY_ADDRESS", "RAY_ADDRESS"),
        description="Address of an existing Ray cluster; unset starts a local Ray instance.",
    )
    ray_auth_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("LOSSFORGE_RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN"),
        description="The Ray cluster's authentication token (`ray get-auth-token` on its head "
        "prints it); unset: Ray's own token file (~/.ray/auth_token) where there is one.",
    )
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://localhost:8001/v1 (vLLM)."
    )
    llm_api_key: SecretStr | None = Field(None, description="Key for the LLM endpoint.")
    llm_model: str | None = Field(None, description="Model name the endpoint serves.")
    judge_api_key: SecretStr | None = Field(
        None,
        description="Key for the hf stage's LLM judge endpoint (the judge's URL and model are in "
        "the campaign spec; keys never are); unset: LOSSFORGE_LLM_API_KEY.",
    )
    data_dir: Path = Field(
        Path(".lossforge/data"), description="Where generated datasets and exports are written."
    )
    cache_dir: Path = Field(
        Path(".lossforge/cache"), description="Where reference models and log-probs are cached."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging level of the entry points."
    )
    lease_ttl_s: float = Field(
        30.0,
        gt=0,
        description="Seconds after its engine's last heartbeat that a running campaign shows as "
        "INTERRUPTED and may be taken over by another engine.",
    )
    lease_heartbeat_s: float = Field(
        5.0, gt=0, description="Seconds between an engine's heartbeats (at most half the TTL)."
    )
    db_retry_s: float = Field(
        30.0,
        ge=0,
        description="Seconds an engine retries a database that stopped answering before it stops "
        "(the campaign stays resumable).",
    )
    shutdown_grace_s: float = Field(
        5.0,
        gt=0,
        description="Seconds `lossforge serve` waits for open connections (event streams) on "
        "SIGTERM, after pausing its campaigns.",
    )

    @model_validator(mode="after")
    def _heartbeat_fits_ttl(self) -> Settings:
        if self.lease_heartbeat_s * 2 > self.lease_ttl_s:
            raise ValueError(
                f"LOSSFORGE_LEASE_HEARTBEAT_S ({self.lease_heartbeat_s:g}) must be at most half of "
                f"LOSSFORGE_LEASE_TTL_S ({self.lease_ttl_s:g}), or a live engine would look gone"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        return normalize_url(value)

    @field_validator("api_token", "llm_api_key", "judge_api_key", "ray_auth_token")
    @classmethod
    def _refuse_placeholders(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError(
                "is a placeholder, not a secret: set a real value "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) or unset it"
            )
        return value

    def child_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` (the process environment) with these settings as `LOSSFORGE_*` variables, for
        an engine process the API starts. The API token stays out: engines do not need it."""
        env = {k: v for k, v in base.items() if k != "LOSSFORGE_API_TOKEN"}
        for name, value in self.model_dump(exclude={"api_token"}).items():
            key = f"LOSSFORGE_{name.upper()}"
            if value is None:
                env.pop(key, None)
            elif isinstance(value, SecretStr):
                env[key] = value.get_secret_value()
            else:
                env[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def judge_key(self) -> SecretStr | None:
        """The judge's key: its own setting, else the proposer's LLM key."""
        return self.judge_api_key or self.llm_api_key
