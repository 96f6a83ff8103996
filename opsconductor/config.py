"""The one settings class. Every variable is read from the environment with prefix OPSCONDUCTOR_."""

import base64
import binascii
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from opsconductor.jobspec.durations import Duration

# Values that appear in examples and tutorials; refused as secrets outside development.
WELL_KNOWN_SECRETS = frozenset(
    {"", "changeme", "changethis", "change-me", "secret", "password", "admin", "opsconductor"}
)

# Production's floor for key strength. A signing key typed by a person or padded from a short
# one shows few distinct characters; 32 random bytes show about 30 distinct values, so 16 is far
# below what a random key has and far above what a made-up one does.
MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_DISTINCT = 10
MIN_MASTER_KEY_DISTINCT_BYTES = 16


# Where http.request never connects unless an operator says otherwise (docs/security.md,
# "Egress from http.request"): link-local (cloud metadata services answer at 169.254.169.254),
# the other cloud metadata addresses, "this network" (0.0.0.0 reaches the host itself),
# unspecified, broadcast and multicast. Loopback and private ranges stay reachable by default:
# a worker's own host and its LAN are where many internal services live.
DEFAULT_HTTP_DENIED_NETWORKS: tuple[IPv4Network | IPv6Network, ...] = tuple(
    ip_network(network)
    for network in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",  # AWS's IPv6 metadata address, outside fe80::/10
        "100.100.100.200/32",  # Alibaba Cloud's metadata address
        "0.0.0.0/8",
        "::/128",
        "255.255.255.255/32",
        "224.0.0.0/4",
        "ff00::/8",
    )
)


def dns_server(entry: str) -> tuple[str, int]:
    """An http.request DNS server, `address`, `address:port` or `[v6 address]:port`, as
    (address, port); ValueError names what is wrong."""
    address, port = entry, "53"
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif entry.count(":") == 1:
        address, port = entry.split(":")
    try:
        ip_address(address)
    except ValueError:
        raise ValueError(f"{entry!r}: a DNS server is an IP address (optionally :port)") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{entry!r}: the port must be 1 to 65535")
    return address, int(port)


def weak_secret_key(value: str) -> str | None:
    """Why a signing key is too weak for production, or None."""
    if len(value) < MIN_SECRET_KEY_LENGTH:
        return f"is {len(value)} characters; at least {MIN_SECRET_KEY_LENGTH} are required"
    if len(set(value)) < MIN_SECRET_KEY_DISTINCT:
        return (
            f"has only {len(set(value))} distinct characters; a random key has many more "
            f"(at least {MIN_SECRET_KEY_DISTINCT} are required)"
        )
    return None


def weak_master_key(value: str) -> str | None:
    """Why a master key is too weak for production, or None. A key that is not base64 of 32
    bytes is refused with its own message when the keys are loaded."""
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(set(key)) < MIN_MASTER_KEY_DISTINCT_BYTES:
        return (
            f"has only {len(set(key))} distinct byte values (all-zero or patterned); it must be "
            "random bytes"
        )
    return None


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class LogFormat(StrEnum):
    # text when the output is a terminal (someone reads it), json otherwise (a collector does)
    auto = "auto"
    json = "json"
    text = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPSCONDUCTOR_", extra="ignore")

    env: Environment = Environment.development
    data_dir: Path = Path("./.opsconductor")

    database_url: str | None = None
    # Connections a process keeps open once it has opened them, and those it may open beyond
    # for a burst and closes again when returned. Every connection costs PostgreSQL a backend
    # and a SCRAM exchange to open, so a process keeps all it may use: with 10 kept and 20 of
    # overflow, 50 clients made the API open and close a connection for most of their requests,
    # doubling their p99 (docs/deployment.md, "Database connections").
    database_pool_size: int = Field(default=30, ge=1)
    database_max_overflow: int = Field(default=0, ge=0)
    # How long a request or step waits for a connection when all are in use; then a request is
    # answered 503 (the database is busy, not broken) and a step's activity is retried.
    database_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    postgres_port: int = Field(default=5433, ge=1, le=65535)

    # Targets per child workflow of a run (see docs/engine.md, "Scale").
    run_batch_size: int = Field(default=100, ge=1, le=1000)
    # The run reconciler (docs/engine.md, "Runs that always end"): how often the API brings run
    # rows in step with their workflows, and how old a row must be before it is looked at (a
    # younger one may still be starting).
    run_reconcile_interval_seconds: float = Field(default=30.0, gt=0)
    run_reconcile_grace_seconds: float = Field(default=30.0, ge=0)

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)

    # A real cluster or Temporal Cloud (docs/deployment.md, "Temporal over TLS"): PEM files of
    # the CA to verify the frontend with (system roots without one), the client certificate
    # and key for mTLS, the name to verify (and send as SNI); and an API key (TLS is then on
    # even without the files).
    temporal_tls_ca: Path | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    # The Temporal Web UI's base URL; the console links each run to its workflow there.
    temporal_ui_url: str | None = None

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # API processes sharing the port (`opsconductor api --workers N`): reads scale with cores.
    # None: one for `api`; for `up`, one per two cores (the worker and Temporal need the rest).
    api_workers: int | None = Field(default=None, ge=1, le=64)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or networks,
    # comma-separated; `*` for any). Empty: none, the socket's peer is the client, whatever
    # a header claims. The login throttle and the audit log key on that address.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Bodies above this many bytes are refused with 413 before they are parsed, so a client
    # cannot make the API buffer gigabytes; 8 MiB leaves room for the 5 MiB target import
    # and library documents with files.
    api_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    admin_email: str = "admin@example.com"

    master_key: SecretStr | None = None
    master_keys_old: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    secret_key: SecretStr | None = None

    access_token_minutes: int = Field(default=15, ge=1, le=1440)
    refresh_token_days: int = Field(default=14, ge=1, le=365)
    password_reset_hours: int = Field(default=24, ge=1, le=720)
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)

    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.auto

    # Networks http.request never connects to, comma-separated (the whole list: name the
    # defaults too when adding, e.g. RFC 1918 ranges or 127.0.0.0/8; empty denies nothing).
    http_denied_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_HTTP_DENIED_NETWORKS)
    )
    # DNS servers (host or host:port, comma-separated) that http.request asks for addresses;
    # empty: the host's resolver (getaddrinfo, /etc/hosts included).
    http_dns_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Where people reach this OpsConductor; notifications link to runs under it.
    public_url: str = "http://127.0.0.1:8000"

    # Origins of the Temporal Web UI, whose codec calls reach /codec from the browser: CORS of
    # /codec/* answers them (and only /codec/*: cors_origins is the rest of the API's).
    # `up` adds its dev UI's address.
    codec_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Under `opsconductor up` the dev UI has no login: its codec calls are answered without a
    # token when they come over loopback from one of codec_cors_origins. Never in production.
    codec_trust_loopback_ui: bool = False

    # How long a stopping worker (SIGTERM, Ctrl-C) lets its running steps finish; it takes no
    # new work from the moment it is told to stop. A step still running when the grace ends is
    # stopped and run again from the start on another worker (docs/deployment.md, "Stopping
    # and deploying workers"). Ten minutes is the default step timeout, so every step without
    # a longer timeout of its own finishes within it. Written like job durations: 90s, 10m.
    worker_shutdown_grace: Duration = timedelta(minutes=10)

    # host:port where a worker serves Prometheus metrics (the Temporal SDK's and ours) at
    # /metrics; unset: none. The API serves its own at /metrics on its port.
    worker_metrics_address: str | None = Field(default=None, pattern=r"^[^\s:]+:\d{1,5}$")
    # OpenTelemetry spans for workflow starts, workflows and activities; needs an SDK and an
    # exporter configured in the process (docs/observability.md).
    tracing_enabled: bool = False

    @field_validator(
        "cors_origins",
        "codec_cors_origins",
        "forwarded_allow_ips",
        "http_denied_networks",
        "http_dns_servers",
        mode="before",
    )
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("http_dns_servers")
    @classmethod
    def _dns_servers_are_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            dns_server(entry)
        return value

    @field_validator("master_keys_old", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("public_url", "temporal_ui_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _client_certificate_with_its_key(self) -> Self:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "OPSCONDUCTOR_TEMPORAL_TLS_CERT and OPSCONDUCTOR_TEMPORAL_TLS_KEY go together "
                "(the client certificate of mTLS and its private key)"
            )
        return self

    @model_validator(mode="after")
    def _production_refuses_default_secrets(self) -> Self:
        if self.env is not Environment.production:
            return self
        problems: list[str] = []
        for name in ("master_key", "secret_key"):
            secret: SecretStr | None = getattr(self, name)
            if secret is None:
                problems.append(f"OPSCONDUCTOR_{name.upper()} is required in production")
            elif secret.get_secret_value().strip().lower() in WELL_KNOWN_SECRETS:
                problems.append(f"OPSCONDUCTOR_{name.upper()} is a well-known default value")
            elif weakness := (weak_master_key if name == "master_key" else weak_secret_key)(
                secret.get_secret_value()
            ):
                problems.append(f"OPSCONDUCTOR_{name.upper()} {weakness}")
        if (
            self.admin_password is not None
            and self.admin_password.get_secret_value().strip().lower() in WELL_KNOWN_SECRETS
        ):
            problems.append("OPSCONDUCTOR_ADMIN_PASSWORD is a well-known default value")
        if self.database_url is None:
            problems.append("OPSCONDUCTOR_DATABASE_URL is required in production")
        if self.codec_trust_loopback_ui:
            problems.append("OPSCONDUCTOR_CODEC_TRUST_LOOPBACK_UI is for development only")
        if self.temporal_address is None:
            problems.append("OPSCONDUCTOR_TEMPORAL_ADDRESS is required in production")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def is_development(self) -> bool:
        return self.env is not Environment.production

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
