"""What the Temporal settings make of the client connection: TLS files, server name, API key."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from opsconductor.config import Settings
from opsconductor.errors import ConfigurationError
from opsconductor.temporal.client import api_key, tls_config


def test_no_tls_setting_leaves_the_connection_to_the_sdk() -> None:
    settings = Settings()
    assert tls_config(settings) is None
    assert api_key(settings) is None


def test_the_tls_files_and_server_name_reach_the_connection(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for name, path in files.items():
        path.write_bytes(f"-----{name}-----".encode())
    settings = Settings(
        temporal_tls_ca=files["ca"],
        temporal_tls_cert=files["cert"],
        temporal_tls_key=files["key"],
        temporal_tls_server_name="frontend.example",
        temporal_api_key="cloud-key",
    )
    tls = tls_config(settings)
    assert tls is not None
    assert tls.server_root_ca_cert == b"-----ca-----"
    assert tls.client_cert == b"-----cert-----"
    assert tls.client_private_key == b"-----key-----"
    assert tls.domain == "frontend.example"
    assert api_key(settings) == "cloud-key"


def test_a_server_name_alone_turns_tls_on_with_the_system_roots() -> None:
    tls = tls_config(Settings(temporal_tls_server_name="frontend.example"))
    assert tls is not None
    assert tls.server_root_ca_cert is None
    assert tls.client_cert is None


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    settings = Settings(temporal_tls_ca=tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="OPSCONDUCTOR_TEMPORAL_TLS_CA"):
        tls_config(settings)


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="OPSCONDUCTOR_TEMPORAL_TLS_KEY go together"):
        Settings(temporal_tls_cert=tmp_path / "cert.pem")
