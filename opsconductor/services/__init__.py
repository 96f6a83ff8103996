"""Domain logic, one module (or package, e.g. `targets/`) per domain. Services take a session
and never commit.

What a service answers, one rule for every resource:

- A function about one row (get, create, update, and actions such as `accept_host_key`)
  answers the table row: callers chain on it (audit entries take its id, workers read its
  columns, other services change it further).
- The resource's API shape is made in exactly one place, the domain's `public(...)`, which
  adds what the row does not hold (a target's group names, a credential's targets…). A router
  answers `public(session, row)` of what the service gave it.
- A list answers `Page[XPublic]` through `paging.paginate_as`, so whatever `public` adds is
  fetched for the whole page at once rather than row by row (or, cheaper still, as a column of
  the page's own statement, through `paging.paginate` and `with_items`: the targets list). A
  resource without a `public` (one whose answer is its columns, e.g. the notification delivery
  log) answers rows there too.
- Answers about an operation rather than a resource (an import report, a connection test) are
  their own models.
"""

# Imported for its SQLAlchemy event hooks: every process that changes users, sessions or API
# tokens through a service (the API, the CLI) tells the API processes to forget whom tokens
# belong to (services/principal_cache.py).
from opsconductor.services import principal_cache  # noqa: F401
