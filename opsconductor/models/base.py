"""Shared metadata (with a naming convention, so migrations name constraints predictably)."""

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, LargeBinary
from sqlmodel import Field, SQLModel
from sqlmodel._compat import is_table_model_class

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = SQLModel.metadata

Schema = TypeVar("Schema", bound=SQLModel)
metadata.naming_convention = NAMING_CONVENTION


def utcnow() -> datetime:
    return datetime.now(UTC)


def id_field() -> Any:
    return Field(default_factory=uuid.uuid4, primary_key=True)


def timestamp_field() -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False)


class SealedColumns(SQLModel):
    """One secret sealed by the key ring (services/sealing.py): the ciphertext under a fresh data
    key, and that data key wrapped by the master key `key_id`."""

    ciphertext: bytes = Field(sa_type=LargeBinary)
    nonce: bytes = Field(sa_type=LargeBinary)
    wrapped_key: bytes = Field(sa_type=LargeBinary)
    key_nonce: bytes = Field(sa_type=LargeBinary)
    key_id: str = Field(max_length=32, index=True)


def public_view(schema: type[Schema], row: SQLModel, **extra: object) -> Schema:
    """`schema` (an API answer) filled from a table row's fields and `extra`.

    The row's fields are read by name into a plain dict, which pydantic validates at once.
    SQLModel's own `model_validate(row, update=…)` wraps the row in a proxy that interprets
    every attribute read: three times slower, a fifth of the API's CPU on a page of targets.
    A loaded column's value sits in the row's `__dict__` (SQLAlchemy's instance state): it is
    read from there, not through the attribute's descriptor (`hasattr` then `getattr`: two
    Python calls per field per row, half of this function's time, benchmarks/README.md fix 14);
    anything else (a property, an expired column) is read as an attribute.

    The answer is validated into a blank instance, as SQLModel's `__init__` does for a schema
    (not a table): handing pydantic the dict instead makes it call that `__init__` (a Python
    override), which validates the same dict again into `self` and copies the instance's
    `__dict__` around it, two validator calls per row (benchmarks/README.md fix 18)."""
    if is_table_model_class(schema):
        raise TypeError(f"public_view makes API answers, not table rows: {schema.__name__}")
    loaded = vars(row)
    values = {
        name: loaded[name] if name in loaded else getattr(row, name)
        for name in schema.model_fields
        if name not in extra and (name in loaded or hasattr(row, name))
    }
    answer: Schema = schema.__new__(schema)  # SQLModel's __new__ sets up pydantic's private state
    schema.__pydantic_validator__.validate_python({**values, **extra}, self_instance=answer)
    return answer
