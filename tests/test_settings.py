"""Settings: defaults, environment, URL normalisation, secrets that stay secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in (
        "LOSSFORGE_DATABASE_URL",
        "LOSSFORGE_API_TOKEN",
        "RAY_ADDRESS",
        "LOSSFORGE_RAY_ADDRESS",
        "LOSSFORGE_LLM_API_KEY",
        "LOSSFORGE_JUDGE_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def test_defaults_are_an_embedded_offline_setup() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///./lossforge.db"
    assert settings.api_token is None and settings.ray_address is None
    assert settings.llm_base_url is None


def test_environment_overrides_and_postgres_urls_get_the_shipped_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOSSFORGE_DATABASE_URL", "postgres://u:pw@db:5432/lossforge")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("LOSSFORGE_PORT", "9000")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u:pw@db:5432/lossforge"
    assert settings.ray_address == "ray://head:10001"
    assert settings.port == 9000


def test_secrets_never_appear_in_repr_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSSFORGE_API_TOKEN", "tok-8c1f9a77")
    monkeypatch.setenv("LOSSFORGE_LLM_API_KEY", "sk-live-5d2e")
    settings = Settings()
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "tok-8c1f9a77" not in text and "sk-live-5d2e" not in text
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "tok-8c1f9a77"


def test_the_judge_key_falls_back_to_the_llm_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().judge_key() is None
    monkeypatch.setenv("LOSSFORGE_LLM_API_KEY", "sk-llm-11aa")
    assert Settings().judge_key().get_secret_value() == "sk-llm-11aa"  # type: ignore[union-attr]
    monkeypatch.setenv("LOSSFORGE_JUDGE_API_KEY", "sk-judge-22bb")
    settings = Settings()
    assert settings.judge_key().get_secret_value() == "sk-judge-22bb"  # type: ignore[union-attr]
    assert "sk-judge-22bb" not in repr(settings) + settings.model_dump_json()
    monkeypatch.setenv("LOSSFORGE_JUDGE_API_KEY", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings()


@pytest.mark.parametrize("placeholder", ["changeme", "CHANGEME", "secret", " "])
def test_placeholder_secrets_are_refused(monkeypatch: pytest.MonkeyPatch, placeholder: str) -> None:
    monkeypatch.setenv("LOSSFORGE_API_TOKEN", placeholder)
    with pytest.raises(ValidationError, match="placeholder"):
        Settings()


def test_invalid_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOSSFORGE_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        Settings()
