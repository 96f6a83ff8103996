"""The one way every process connects to Temporal, so all of them share one data converter."""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from opsconductor.config import Settings
from opsconductor.errors import ConfigurationError


def temporal_address(settings: Settings) -> str:
    if settings.temporal_address is None:
        raise ConfigurationError(
            "OPSCONDUCTOR_TEMPORAL_ADDRESS is not set (`opsconductor up` sets it for the "
            "embedded dev server; other commands need it)"
        )
    return settings.temporal_address


def data_converter() -> DataConverter:
    # Pydantic models in and out of every workflow and activity; one typed input each.
    return pydantic_data_converter


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """lazy=True returns at once and connects on first use, for processes that must start
    (and report) while Temporal is still coming up."""
    return await Client.connect(
        temporal_address(settings),
        namespace=settings.temporal_namespace,
        data_converter=data_converter(),
        lazy=lazy,
    )
