"""The one way every process connects to Temporal, so all of them share one data converter."""

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from opsconductor.config import Settings
from opsconductor.errors import ConfigurationError
from opsconductor.security.keys import ProcessKeys, load_process_keys
from opsconductor.temporal.codec import EncryptionCodec


def temporal_address(settings: Settings) -> str:
    if settings.temporal_address is None:
        raise ConfigurationError(
            "OPSCONDUCTOR_TEMPORAL_ADDRESS is not set (`opsconductor up` sets it for the "
            "embedded dev server; other commands need it)"
        )
    return settings.temporal_address


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


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """lazy=True returns at once and connects on first use, for processes that must start
    (and report) while Temporal is still coming up."""
    return await Client.connect(
        temporal_address(settings),
        namespace=settings.temporal_namespace,
        data_converter=data_converter(load_process_keys(settings)),
        lazy=lazy,
    )
