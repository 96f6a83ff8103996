"""The list envelope every collection answers with (docs/api.md "Lists")."""

from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    # Exact up to services.paging.TOTAL_CAP matching rows; past it the cap, with total_capped.
    total: int
    total_capped: bool
    limit: int
    offset: int
    # An opaque cursor: `?cursor=<next>` continues after this page's last row; null at the end.
    next: str | None
