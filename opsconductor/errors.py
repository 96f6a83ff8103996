"""Typed domain errors. Each carries its HTTP status; api/problems.py renders them as RFC 9457."""

from dataclasses import dataclass
from typing import Any, ClassVar


class ConfigurationError(Exception):
    """The process cannot start with the configuration it was given."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One problem with one input field, located by its path (e.g. `body.steps.0.with.url`)."""

    path: str
    message: str
    type: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "type": self.type}


class OpsConductorError(Exception):
    """Base of every error that reaches an API client. Subclasses set status and title."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return f"https://opsconductor.dev/problems/{self.slug}"


class BadRequest(OpsConductorError):
    status = 400
    title = "Bad request"
    slug = "bad-request"


class InputInvalid(OpsConductorError):
    status = 422
    title = "Validation failed"
    slug = "validation"

    def __init__(self, detail: str, problems: list[FieldProblem]):
        super().__init__(detail)
        self.problems = problems

    @classmethod
    def at(cls, path: str, message: str, kind: str = "invalid") -> "InputInvalid":
        """One problem with one field: detail `<path> <message>`."""
        return cls(f"{path} {message}", [FieldProblem(path, message, kind)])


class NotAuthenticated(OpsConductorError):
    status = 401
    title = "Not authenticated"
    slug = "not-authenticated"

    def __init__(self, detail: str = "Authentication is required"):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class PermissionDenied(OpsConductorError):
    status = 403
    title = "Permission denied"
    slug = "permission-denied"


class NotFound(OpsConductorError):
    status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(OpsConductorError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class TooManyRequests(OpsConductorError):
    status = 429
    title = "Too many requests"
    slug = "too-many-requests"

    def __init__(self, detail: str, retry_after_seconds: int):
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_seconds))})


class PayloadTooLarge(OpsConductorError):
    status = 413
    title = "Payload too large"
    slug = "payload-too-large"


class DependencyUnavailable(OpsConductorError):
    """PostgreSQL or Temporal cannot be reached; the client may retry later."""

    status = 503
    title = "Service unavailable"
    slug = "unavailable"

    def __init__(self, detail: str, retry_after_seconds: int = 5):
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class LaunchUncertain(DependencyUnavailable):
    """Temporal did not answer a start in time (deadline exceeded, unavailable): the workflow
    may have started. The row is left as it is for the run reconciler to settle
    (services/run_reconciler.py), never marked failed, so a start that did happen is not
    reported as a failure and overwritten later."""
