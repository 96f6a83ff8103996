"""The search attributes runs carry, so the Temporal UI and CLI can find a job's runs.

A Temporal cluster starts without them: `opsconductor migrate` and the worker register the
missing ones; the embedded dev server is started with them.
"""

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from opsconductor.contracts.runs import RUN_SEARCH_ATTRIBUTES


def dev_server_search_attributes() -> dict[str, str]:
    return {key.name: "Keyword" for key in RUN_SEARCH_ATTRIBUTES}


async def ensure_search_attributes(client: Client) -> list[str]:
    """Registers the missing ones; answers the names it added."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = [key.name for key in RUN_SEARCH_ATTRIBUTES if key.name not in known]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing
                },
            )
        )
    return missing
