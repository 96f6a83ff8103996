"""The one way every process connects to Temporal, so all of them share one data converter."""

import dataclasses
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.common import HeaderCodecBehavior
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from opsconductor.config import Settings
from opsconductor.embedded.ports import port_is_free
from opsconductor.errors import ConfigurationError
from opsconductor.security.keys import ProcessKeys, load_process_keys
from opsconductor.temporal.codec import EncryptionCodec
from opsconductor.temporal.interceptors import RequestIdInterceptor


def temporal_address(settings: Settings) -> str:
    if settings.temporal_address is None:
        raise ConfigurationError(
            "OPSCONDUCTOR_TEMPORAL_ADDRESS is not set (`opsconductor up` sets it for the "
            "embedded dev server; other commands need it)"
        )
    return settings.temporal_address


def _pem(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"OPSCONDUCTOR_{setting} names {str(path)!r}, which cannot be read: {error.strerror}"
        ) from None


def tls_config(settings: Settings) -> TLSConfig | None:
    """TLS to the Temporal frontend when any TLS setting is given; None leaves it to the SDK
    (plain, or TLS with the system's roots when an API key is set)."""
    if (
        settings.temporal_tls_ca is None
        and settings.temporal_tls_cert is None
        and settings.temporal_tls_server_name is None
    ):
        return None
    return TLSConfig(
        server_root_ca_cert=_pem(settings.temporal_tls_ca, "TEMPORAL_TLS_CA"),
        client_cert=_pem(settings.temporal_tls_cert, "TEMPORAL_TLS_CERT"),
        client_private_key=_pem(settings.temporal_tls_key, "TEMPORAL_TLS_KEY"),
        domain=settings.temporal_tls_server_name,
    )


def api_key(settings: Settings) -> str | None:
    return settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None


def data_converter(keys: ProcessKeys) -> DataConverter:
    """Pydantic models in and out of every workflow and activity, encrypted on the way out.

    Failure messages and stack traces are moved into an encoded attribute too, because an
    error message may quote what a remote command printed.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def interceptors(settings: Settings) -> list[Interceptor]:
    """Client interceptors; the SDK applies them to every worker built on the client too."""
    chosen: list[Interceptor] = [RequestIdInterceptor()]
    if settings.tracing_enabled:
        # Imported only when asked for: tracing is optional, off by default, and its module
        # needs the OpenTelemetry SDK, which is not a dependency.
        try:
            from temporalio.contrib.opentelemetry import TracingInterceptor
        except ImportError as error:
            raise ConfigurationError(
                f"OPSCONDUCTOR_TRACING_ENABLED needs the OpenTelemetry SDK ({error}); install "
                "it with `pip install 'opsconductor[tracing]'` or turn tracing off"
            ) from None
        chosen.append(TracingInterceptor())
    return chosen


def worker_runtime(settings: Settings) -> Runtime | None:
    """A runtime that serves the SDK's metrics (and ours, made through its meter) for
    Prometheus, when OPSCONDUCTOR_WORKER_METRICS_ADDRESS is set."""
    address = settings.worker_metrics_address
    if address is None:
        return None
    host, _, port = address.rpartition(":")
    if not port_is_free(host, int(port)):
        raise ConfigurationError(
            f"OPSCONDUCTOR_WORKER_METRICS_ADDRESS {address} is already in use (choose another "
            "port, or stop what is listening there)"
        )
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def connect(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    """lazy=True returns at once and connects on first use, for processes that must start
    (and report) while Temporal is still coming up."""
    return await Client.connect(
        temporal_address(settings),
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=api_key(settings),
        data_converter=data_converter(load_process_keys(settings)),
        interceptors=interceptors(settings),
        # Headers (the request id, trace context) are payloads too: sealed like the rest.
        header_codec_behavior=HeaderCodecBehavior.CODEC,
        runtime=runtime,
        lazy=lazy,
    )
