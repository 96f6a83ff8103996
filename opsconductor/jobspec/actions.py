"""The core action catalog: each action's `with` schema, where it runs, and what it returns.

A `with` model validates the document when a job is saved (fields may hold templates, checked
for syntax then) and again after rendering, when the step runs.
"""

import posixpath
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from opsconductor.contracts.queues import TaskQueue
from opsconductor.jobspec.durations import Duration
from opsconductor.jobspec.scan import DEFAULT_SCAN_PORTS, TemplatedHosts, TemplatedPorts, Timing
from opsconductor.jobspec.templates import Templated, TemplateString, is_template

HttpStatus = Annotated[int, Field(ge=100, le=599)]


class ActionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SshCommand(ActionInput):
    command: str = Field(min_length=1, description="Run by the login shell of the target user")
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    sudo: Templated[bool] = False
    expect_exit: Templated[list[int]] = Field(default_factory=lambda: [0])


class SshScript(ActionInput):
    script: str = Field(min_length=1)
    interpreter: str = "bash"
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    sudo: Templated[bool] = False
    expect_exit: Templated[list[int]] = Field(default_factory=lambda: [0])


def dest_problem(value: str) -> str | None:
    """Why a path is not a plain absolute path to a file, or None when it is."""
    if "\x00" in value:
        return "must not contain a NUL character"
    if not value.startswith("/"):
        return f"must be an absolute path, got {value!r}"
    if ".." in value.split("/"):
        return f"must not contain '..' segments, got {value!r}"
    if value == "/" or "//" in value or posixpath.normpath(value) != value:
        return f"must be a normalized path to a file (no '.', '//' or trailing '/'), got {value!r}"
    return None


def _checked_dest(value: str) -> str:
    # A template is checked by the worker once rendered (whatever it renders to).
    if not is_template(value) and (problem := dest_problem(value)):
        raise ValueError(problem)
    return value


class SshUpload(ActionInput):
    dest: Annotated[str, AfterValidator(_checked_dest)] = Field(
        min_length=1, description="Absolute, normalized path of the file on the target"
    )
    content: str | None = Field(default=None, description="The file's text (a template)")
    file: str | None = Field(default=None, description="A file of the step's library")
    mode: str = Field(
        default="0644", pattern=r"^0?[0-7]{3,4}$|\{\{", description="Octal, e.g. 0600"
    )

    @model_validator(mode="after")
    def _one_source(self) -> "SshUpload":
        if (self.content is None) == (self.file is None):
            raise ValueError("give exactly one of `content` or `file`")
        return self


class WinrmPowershell(ActionInput):
    script: str = Field(min_length=1)
    expect_exit: Templated[list[int]] = Field(default_factory=lambda: [0])


# What no quoting keeps cmd.exe from acting on: `%VAR%` expands before any escape is read (and
# `!VAR!` with delayed expansion on), and a line break ends the command line.
CMD_UNQUOTABLE = {
    "%": "%",
    "!": "!",
    "\r": "a carriage return",
    "\n": "a line break",
    "\x00": "NUL",
}


def _cmd_argument(value: str) -> str:
    # A template is checked once rendered, when the step runs.
    if is_template(value):
        return value
    found = [name for char, name in CMD_UNQUOTABLE.items() if char in value]
    if found:
        raise ValueError(
            f"contains {', '.join(found)}, which cmd.exe would act on however the argument is "
            "quoted; put such values in the command itself, or use winrm.powershell"
        )
    return value


class WinrmCmd(ActionInput):
    command: str = Field(min_length=1, description="A cmd.exe command line, as written")
    args: list[Annotated[str, AfterValidator(_cmd_argument)]] = Field(
        default_factory=list,
        description="Each one argument, quoted and escaped for cmd.exe; no %, !, line breaks",
    )
    expect_exit: Templated[list[int]] = Field(default_factory=lambda: [0])


class HttpRequest(ActionInput):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: JsonValue | None = Field(default=None, alias="json")
    body: str | None = None
    credential: str | None = Field(default=None, description="A credential name for auth")
    expect_status: Templated[list[HttpStatus]] = Field(default_factory=lambda: [200])
    timeout: Duration | TemplateString = Field(default="30s", validate_default=True)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_body(self) -> "HttpRequest":
        if self.json_body is not None and self.body is not None:
            raise ValueError("give `json` or `body`, not both")
        return self


class NotifySend(ActionInput):
    channel: str = Field(min_length=1, description="A notification channel's name")
    title: str = Field(default="", description="A template; empty means a run summary title")
    body: str = Field(default="", description="A template; empty means a run summary")


class NmapScan(ActionInput):
    """The fields of a discovery scan (jobspec/scan.py). There is no free-form `arguments`:
    nmap's command line is built from these validated fields only."""

    hosts: TemplatedHosts
    ports: TemplatedPorts = DEFAULT_SCAN_PORTS
    timing: Templated[Timing] = Timing.T3
    os_detection: Templated[bool] = False
    service_detection: Templated[bool] = True


class ControlSleep(ActionInput):
    duration: Duration | TemplateString


class ControlApproval(ActionInput):
    message: str = Field(min_length=1)
    approvers: list[str] = Field(
        default_factory=lambda: ["operator"],
        description="Roles (admin, operator, viewer: that role or above, as the decider's role "
        "is now) or usernames allowed to decide",
    )
    allow_self_approval: bool = Field(
        default=False,
        description="Let the person who requested the run approve it (off: four eyes)",
    )
    timeout: Duration | TemplateString = Field(default="24h", validate_default=True)


class JobRun(ActionInput):
    job: str = Field(min_length=1, description="The name of the job to run")
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    targets: dict[str, JsonValue] | None = None


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    description: str
    input_model: type[BaseModel]
    outputs: tuple[str, ...]
    # Where the activity runs; None for actions the workflow performs itself. (job.run is both:
    # an orchestration activity prepares the child run, then the workflow starts it.)
    queue: TaskQueue | None
    # Actions that act on a target cannot be `run_once`: the run has no target to give them.
    needs_target: bool
    # Actions that only make sense once for the whole run. An approval is a decision about the
    # run: asking per target would flood the approvers and, at scale, the run's history.
    run_once_only: bool = False
    # Documented but not yet executable: documents using it are refused when saved, with a
    # clear message, rather than failing at run time.
    available: bool = True
    # The activity type that runs it; core protocol actions share one per queue.
    activity: str | None = None

    def with_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema(by_alias=True)

    @property
    def activity_name(self) -> str | None:
        if self.activity is not None or self.queue is None:
            return self.activity
        return f"{self.queue.value}-step"


_REMOTE_OUTPUTS = ("exit_code", "stdout", "stderr")

CORE_ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "ssh.command",
            "Run a command on the target over SSH",
            SshCommand,
            _REMOTE_OUTPUTS,
            TaskQueue.ssh,
            needs_target=True,
        ),
        ActionSpec(
            "ssh.script",
            "Upload and run a script on the target over SSH",
            SshScript,
            _REMOTE_OUTPUTS,
            TaskQueue.ssh,
            needs_target=True,
        ),
        ActionSpec(
            "ssh.upload",
            "Write a file on the target over SFTP",
            SshUpload,
            ("bytes", "sha256"),
            TaskQueue.ssh,
            needs_target=True,
        ),
        ActionSpec(
            "winrm.powershell",
            "Run PowerShell on the target over WinRM",
            WinrmPowershell,
            _REMOTE_OUTPUTS,
            TaskQueue.winrm,
            needs_target=True,
        ),
        ActionSpec(
            "winrm.cmd",
            "Run a cmd.exe command on the target over WinRM",
            WinrmCmd,
            _REMOTE_OUTPUTS,
            TaskQueue.winrm,
            needs_target=True,
        ),
        ActionSpec(
            "http.request",
            "Send an HTTP request and check its status",
            HttpRequest,
            ("status", "headers", "body", "json"),
            TaskQueue.http,
            needs_target=False,
        ),
        ActionSpec(
            "notify.send",
            "Send a notification through a channel",
            NotifySend,
            ("delivered",),
            TaskQueue.notify,
            needs_target=False,
        ),
        ActionSpec(
            "nmap.scan",
            "Scan hosts for open ports and services (stored as a discovery scan)",
            NmapScan,
            ("hosts", "addresses", "scan_id"),
            TaskQueue.discovery,
            needs_target=False,
        ),
        ActionSpec(
            "control.sleep",
            "Wait for a duration (a durable timer)",
            ControlSleep,
            (),
            None,
            needs_target=False,
        ),
        ActionSpec(
            "control.approval",
            "Wait for a person to approve or reject",
            ControlApproval,
            ("decision", "by", "comment"),
            None,
            needs_target=False,
            run_once_only=True,
        ),
        ActionSpec(
            "job.run",
            "Run another job as a child run",
            JobRun,
            ("run_id", "status", "outputs"),
            TaskQueue.orchestration,
            needs_target=False,
        ),
    )
}
