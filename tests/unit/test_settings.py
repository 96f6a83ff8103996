"""Settings: production refuses missing or default secrets; development makes its own keys."""

import base64
import secrets
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from opsconductor.config import Environment, Settings
from opsconductor.errors import ConfigurationError
from opsconductor.security.keys import load_process_keys

GOOD_KEY = base64.b64encode(bytes(range(7, 7 * 33, 7))).decode()


def production(**values: object) -> Settings:
    base: dict[str, object] = {
        "env": "production",
        "master_key": GOOD_KEY,
        "secret_key": "a-long-random-signing-key-for-tests",
        "database_url": "postgresql+asyncpg://u:p@db/opsconductor",
        "temporal_address": "temporal:7233",
    }
    return Settings.model_validate({**base, **values})


def test_production_with_real_secrets_starts() -> None:
    assert production().env is Environment.production


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"master_key": None}, "OPSCONDUCTOR_MASTER_KEY is required"),
        ({"secret_key": None}, "OPSCONDUCTOR_SECRET_KEY is required"),
        ({"secret_key": "changeme"}, "OPSCONDUCTOR_SECRET_KEY is a well-known default"),
        ({"admin_password": "admin"}, "OPSCONDUCTOR_ADMIN_PASSWORD is a well-known default"),
        ({"database_url": None}, "OPSCONDUCTOR_DATABASE_URL is required"),
        ({"secret_key": "x"}, "OPSCONDUCTOR_SECRET_KEY is 1 characters; at least 32"),
        ({"secret_key": "ab" * 20}, "OPSCONDUCTOR_SECRET_KEY has only 2 distinct characters"),
        (
            {"master_key": base64.b64encode(bytes(32)).decode()},
            "OPSCONDUCTOR_MASTER_KEY has only 1 distinct byte values",
        ),
        (
            {"master_key": base64.b64encode(b"0123456789" * 3 + b"01").decode()},
            "OPSCONDUCTOR_MASTER_KEY has only 10 distinct byte values",
        ),
    ],
)
def test_production_refuses_missing_or_default_secrets(
    override: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        production(**override)


def test_production_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCONDUCTOR_ENV", "production")
    with pytest.raises(ValidationError, match="refusing to start in production"):
        Settings()


def test_master_key_must_be_32_bytes_of_base64(tmp_path: Path) -> None:
    short = Settings(data_dir=tmp_path, master_key=base64.b64encode(b"short").decode())
    with pytest.raises(ConfigurationError, match="must decode to 32 bytes"):
        load_process_keys(short)
    with pytest.raises(ConfigurationError, match="not valid base64"):
        load_process_keys(Settings(data_dir=tmp_path, master_key="***"))


def test_development_generates_keys_once_with_owner_only_access(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = load_process_keys(settings)
    second = load_process_keys(settings)
    assert first == second
    assert len(first.master_key) == 32
    for name in ("master.key", "signing.key"):
        mode = stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode)
        assert mode == 0o600, name


def test_lists_are_read_from_comma_separated_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCONDUCTOR_CORS_ORIGINS", "http://localhost:8233, https://ops.example")
    monkeypatch.setenv("OPSCONDUCTOR_MASTER_KEYS_OLD", f"{GOOD_KEY},{GOOD_KEY}")
    settings = Settings()
    assert settings.cors_origins == ["http://localhost:8233", "https://ops.example"]
    assert len(settings.master_keys_old) == 2


def test_unknown_log_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCONDUCTOR_LOG_LEVEL", "chatty")
    with pytest.raises(ValidationError, match="log_level"):
        Settings()


def test_generated_keys_pass_the_strength_check() -> None:
    # What docs/deployment.md tells people to run: base64 of 32 random bytes for the master key
    # and a long random string for the signing key.
    for _ in range(200):
        production(
            master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            secret_key=secrets.token_urlsafe(32),
        )
