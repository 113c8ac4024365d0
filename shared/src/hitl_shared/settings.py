"""Settings shared by every service, read from the environment (prefix ``HITL_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "development-secret", "dev"}
DEVELOPMENT_SECRET = "development-secret"  # noqa: S105 (refused in production)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HITL_", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    # Signs session cookies and CSRF tokens.
    secret_key: str = DEVELOPMENT_SECRET
    webhook_secret: str = "whsec_ZGV2ZWxvcG1lbnQtd2ViaG9vay1zZWNyZXQtMTIzNDU2"  # noqa: S105

    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Keeps test runs and several installations on one Redis apart.
    queue_prefix: str = "hitl"
    queue_backend: Literal["arq", "inprocess"] = "arq"

    data_dir: Path = Path("./hitl-data")
    port: int = 8000
    metrics_port: int = 0

    max_body_bytes: int = 1024 * 1024
    review_lock_seconds: int = 600
    # The inbox's queue counts are reused this long in each process (the page says "as of").
    inbox_cache_seconds: float = 5.0
    sweep_interval_seconds: float = 5.0
    stuck_after_seconds: float = 30.0
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 12
    webhook_allow_private: bool = True

    # Key for the `openai` provider (any OpenAI-compatible endpoint); never stored in a workflow.
    openai_api_key: str | None = None

    bootstrap_admin_password: str | None = None
    bootstrap_api_key: str | None = None

    # The example workflows (support triage, lead qualification) and a few items to try them.
    demo_workflows: bool = True
    demo_items: bool = True
    application_name: str = Field(default="hitl")

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "production":
            if self.secret_key.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "HITL_SECRET_KEY is a placeholder; set a long random value "
                    "(for example `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
            if "ZGV2ZWxvcG1lbnQtd2ViaG9vay1zZWNyZXQ" in self.webhook_secret:
                raise ValueError(
                    "HITL_WEBHOOK_SECRET is the development default; set your own "
                    "`whsec_...` secret (base64 of 24+ random bytes) in production"
                )
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hitl.sqlite3').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
