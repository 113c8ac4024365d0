import pytest
from pydantic import ValidationError

from hitl_shared.settings import Settings


def test_production_refuses_the_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="HITL_SECRET_KEY is a placeholder"):
        Settings(environment="production")


def test_production_refuses_the_development_webhook_secret() -> None:
    with pytest.raises(ValidationError, match="HITL_WEBHOOK_SECRET"):
        Settings(environment="production", secret_key="x" * 40)


def test_production_accepts_real_secrets_and_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("HITL_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    monkeypatch.setenv("HITL_PORT", "9999")
    s = Settings(environment="production")
    assert s.port == 9999


def test_embedded_database_lives_in_the_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path.resolve()}/hitl.sqlite3"
