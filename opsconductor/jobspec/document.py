"""The job document as pydantic models; its JSON Schema is what clients and the builder use."""

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from opsconductor.jobspec.durations import Duration
from opsconductor.jobspec.templates import TemplateString

JOB_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
# Step ids are plain identifiers so templates can always say `steps.<id>`.
STEP_ID_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
PERCENT_PATTERN = r"^(100|[1-9]?[0-9])%$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ParameterType(StrEnum):
    string = "string"
    integer = "integer"
    number = "number"
    boolean = "boolean"
    array = "array"
    object = "object"


class ParameterSpec(Strict):
    type: ParameterType = ParameterType.string
    description: str = ""
    default: JsonValue = None
    required: bool = False
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: list[JsonValue] | None = None
    secret: bool = Field(
        default=False,
        # docs/jobs.md says the same: a flag for tools that read the schema, no more.
        description="Not acted on by this release: the value is stored on the run as given. "
        "Keep secrets in the vault and read them with secret('name')",
    )


class TargetSelector(Strict):
    """Targets are resolved when a run starts: the union of groups, tags (all must match) and
    names. An empty selector selects nothing, so a run-once-only job needs no targets."""

    groups: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.groups or self.tags or self.names)


class Order(StrEnum):
    per_target = "per-target"
    per_step = "per-step"


class Strategy(Strict):
    order: Order = Order.per_target
    concurrency: Annotated[int, Field(ge=1, le=10_000)] | TemplateString = 10
    max_failed_targets: (
        Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=PERCENT_PATTERN)] | None
    ) = Field(
        default=None,
        description="Stop starting new targets once more than this many (or this share) "
        "failed; unset means every target is tried",
    )


class RunEvent(StrEnum):
    start = "start"
    success = "success"
    failure = "failure"
    approval = "approval"


class Retry(Strict):
    attempts: int = Field(default=1, ge=1, le=100, description="1 means the step runs once")
    interval: Duration = Field(default=timedelta(seconds=1))
    backoff: float = Field(default=2.0, ge=1.0, le=10.0)
    max_interval: Duration | None = None


class NotifyRule(Strict):
    """Run-level notifications: a message to `channel` at each of the run events in `on`."""

    on: list[RunEvent] = Field(min_length=1)
    channel: str = Field(min_length=1, description="A notification channel's name")
    title: str | None = Field(default=None, description="A template; a summary by default")
    body: str | None = Field(default=None, description="A template; a summary by default")
    retry: Retry = Field(
        default_factory=lambda: Retry(attempts=5, interval=timedelta(seconds=2)),
        description="Delivery attempts and backoff; a failed delivery never fails the run",
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, value: Any) -> Any:
        # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean true.
        if isinstance(value, dict) and True in value and "on" not in value:
            value = {("on" if key is True else key): item for key, item in value.items()}
        return value


class OnError(StrEnum):
    fail = "fail"
    continue_ = "continue"


class Step(Strict):
    id: str = Field(pattern=STEP_ID_PATTERN)
    action: str = Field(min_length=1)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    needs: list[str] = Field(default_factory=list)
    when: str | None = None
    on_error: OnError = OnError.fail
    retry: Retry = Field(default_factory=Retry)
    timeout: Duration | None = None
    run_once: bool = False
    credential: str | None = Field(
        default=None, description="A credential name overriding the target's for this step"
    )
    name: str | None = Field(default=None, description="A human title; defaults to the id")


class JobDocument(Strict):
    name: str = Field(pattern=JOB_NAME_PATTERN)
    description: str = ""
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    targets: TargetSelector = Field(default_factory=TargetSelector)
    strategy: Strategy = Field(default_factory=Strategy)
    timeout: Duration | None = None
    notify: list[NotifyRule] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    api_version: Literal["opsconductor/v1"] = Field(default="opsconductor/v1")

    def step(self, step_id: str) -> Step:
        return next(step for step in self.steps if step.id == step_id)


def job_document_schema() -> dict[str, Any]:
    return JobDocument.model_json_schema(by_alias=True)
