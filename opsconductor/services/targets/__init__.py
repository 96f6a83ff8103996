"""The target inventory, one module per purpose:

- `inventory`: targets themselves (read, list, create, change, delete) and their `public` shape;
- `groups`: target groups and membership (`public` is their shape);
- `bulk_import`: upsert by name from a JSON list or CSV;
- `host_keys`: SSH host-key pinning (accepting a key; trust on first use for workers);
- `selection`: a job's target selector resolved into `TargetSnapshot`s;
- `connection_tests`: POST /targets/{id}/test through a worker.

Services and activities import the module they need. This package names the functions the
`/targets` and `/target-groups` routers call (`targets.create_group`, `targets.group_public`…),
so those routers keep one import whichever module a function lives in.
"""

from opsconductor.services.targets.bulk_import import import_targets, rows_from_csv
from opsconductor.services.targets.connection_tests import test_connection
from opsconductor.services.targets.groups import (
    create_group,
    delete_group,
    get_group,
    list_groups,
    set_members,
    update_group,
)
from opsconductor.services.targets.groups import public as group_public
from opsconductor.services.targets.host_keys import accept_host_key
from opsconductor.services.targets.inventory import (
    create_target,
    delete_target,
    get_target,
    list_targets,
    parse_tag_filters,
    public,
    update_target,
)
from opsconductor.services.targets.selection import preview_selector, resolve_selector

__all__ = [
    "accept_host_key",
    "create_group",
    "create_target",
    "delete_group",
    "delete_target",
    "get_group",
    "get_target",
    "group_public",
    "import_targets",
    "list_groups",
    "list_targets",
    "parse_tag_filters",
    "preview_selector",
    "public",
    "resolve_selector",
    "rows_from_csv",
    "set_members",
    "test_connection",
    "update_group",
    "update_target",
]
