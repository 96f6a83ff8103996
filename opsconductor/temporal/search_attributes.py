"""The search attributes runs carry, so the Temporal UI and CLI can find a job's runs.

A Temporal cluster starts without them: `opsconductor migrate` and the worker register the
missing ones; the embedded dev server is started with them.
"""

import uuid

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

JOB_ID = SearchAttributeKey.for_keyword("OpsJobId")
JOB_NAME = SearchAttributeKey.for_keyword("OpsJobName")
TRIGGERED_BY = SearchAttributeKey.for_keyword("OpsTriggeredBy")
RUN_SEARCH_ATTRIBUTES = (JOB_ID, JOB_NAME, TRIGGERED_BY)


def run_search_attributes(
    job_id: uuid.UUID, job_name: str, triggered_by: str
) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(JOB_ID, str(job_id)),
            SearchAttributePair(JOB_NAME, job_name),
            SearchAttributePair(TRIGGERED_BY, triggered_by),
        ]
    )


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
