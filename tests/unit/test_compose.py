"""docker-compose.yml, the Dockerfile and .dockerignore: the production-shaped deployment.

No Docker engine exists where these tests run, so they check structure: the services and how
they depend on each other, one worker service per task queue, restart policies, health checks,
required secrets, and that the environment compose hands our processes is one that
`Settings` accepts in production. docs/deployment.md lists what this does not prove.
"""

import base64
import fnmatch
import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from opsconductor.config import Environment, Settings
from opsconductor.contracts.queues import ALL_QUEUES
from opsconductor.security.keys import load_process_keys
from opsconductor.workflows.step_execution import DEFAULT_STEP_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

INFRASTRUCTURE = {"postgresql", "temporal", "temporal-ui"}
WORKERS = {f"worker-{queue.value}" for queue in ALL_QUEUES}
EXPECTED_SERVICES = INFRASTRUCTURE | {"migrate", "api"} | WORKERS
ONE_SHOT = {"migrate"}
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "OPSCONDUCTOR_MASTER_KEY", "OPSCONDUCTOR_SECRET_KEY")

# What an operator would export; the values only have to be well-formed.
DUMMY_SECRETS = {
    "POSTGRES_PASSWORD": "pw-Test_0123456789",
    "OPSCONDUCTOR_MASTER_KEY": base64.b64encode(bytes(range(32))).decode(),
    "OPSCONDUCTOR_SECRET_KEY": "a-long-random-signing-key-for-the-compose-test",
}


# ----------------------------------------------------------------------------- helpers


class MissingVariable(LookupError):
    pass


# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution, for the forms this repository uses."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op[0] == ":")
        if op is not None and op.endswith("?") and unset_or_empty:
            raise MissingVariable(f"{name}: {arg}")
        if op is not None and op.endswith("-") and unset_or_empty:
            return arg
        return value or ""

    return _VARIABLE.sub(substitute, text)


def load(text: str) -> dict[str, Any]:
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def raw_compose() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(raw_compose: str) -> dict[str, Any]:
    # yaml.safe_load resolves the anchors and `<<:` merge keys, as compose does.
    return load(raw_compose)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def ours(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the OpsConductor image."""
    return {name: spec for name, spec in services.items() if "build" in spec}


def queues_served(spec: dict[str, Any]) -> list[str]:
    command = spec.get("command")
    assert isinstance(command, list), "commands are exec-form lists"
    return [command[i + 1] for i, part in enumerate(command) if part in ("--queue", "-q")]


def duration(value: str) -> timedelta:
    units = {"h": "hours", "m": "minutes", "s": "seconds", "ms": "milliseconds"}
    parts = re.findall(r"(\d+)(ms|h|m|s)", value)
    assert parts, f"not a compose duration: {value!r}"
    assert "".join(number + unit for number, unit in parts) == value
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{units[unit]: int(number)})
    return total


def published(spec: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, from short-syntax `ports` entries."""
    mapping: dict[int, int] = {}
    for entry in spec.get("ports", []):
        *_host_ip, host, container = str(entry).split(":")
        mapping[int(container)] = int(host)
    return mapping


# ----------------------------------------------------------------------------- compose


def test_compose_spec_file_has_no_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


def test_all_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_every_queue_has_exactly_one_worker_service(services: dict[str, dict[str, Any]]) -> None:
    served: dict[str, str] = {}
    for name, spec in services.items():
        command = spec.get("command")
        if not (isinstance(command, list) and command and command[0] == "worker"):
            continue
        queues = queues_served(spec)
        assert len(queues) == 1, f"{name} must serve exactly one queue, serves {queues}"
        (queue,) = queues
        assert name == f"worker-{queue}"
        assert queue not in served, f"{queue} is served by {served[queue]} and {name}"
        served[queue] = name
    assert set(served) == {queue.value for queue in ALL_QUEUES}


def test_worker_health_checks_probe_their_own_queue(services: dict[str, dict[str, Any]]) -> None:
    for name in WORKERS:
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert test[-1] == queues_served(services[name])[0], f"{name} probes another queue"
        script = test[3]
        compile(script, f"{name} health check", "exec")
        # Compose would substitute a `$` in the script.
        assert "$" not in script


def test_long_running_services_restart_and_migrate_does_not(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, spec in services.items():
        if name in ONE_SHOT:
            assert spec.get("restart") == "no", f"{name} runs once"
        else:
            assert spec.get("restart") in {"always", "unless-stopped", "on-failure"}, name


def test_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name in {"postgresql", "temporal", "api"} | WORKERS:
        healthcheck = services[name].get("healthcheck")
        assert healthcheck, f"{name} has no health check"
        assert not healthcheck.get("disable", False)
        test = healthcheck["test"]
        assert isinstance(test, list)
        assert test[0] in {"CMD", "CMD-SHELL"}
        assert len(test) > 1


def test_api_health_check_asks_the_health_endpoint(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    test = api["healthcheck"]["test"]
    port = int(api["environment"]["OPSCONDUCTOR_API_PORT"])
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{port}/health" in test[3]
    compile(test[3], "api health check", "exec")


def test_dependencies_wait_on_conditions_and_form_no_cycle(
    services: dict[str, dict[str, Any]],
) -> None:
    graph: dict[str, set[str]] = {}
    for name, spec in services.items():
        depends_on = spec.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must name conditions"
        for target, rule in depends_on.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = rule["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, name
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} can never become healthy"
            else:
                assert services[target].get("restart") == "no", f"{target} never completes"
        graph[name] = set(depends_on)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"depends_on has a cycle: {error.args[1]}")
    assert order.index("migrate") < order.index("api")


def test_processes_start_in_the_right_order(services: dict[str, dict[str, Any]]) -> None:
    def waits_for(name: str) -> dict[str, str]:
        return {target: rule["condition"] for target, rule in services[name]["depends_on"].items()}

    assert waits_for("temporal") == {"postgresql": "service_healthy"}
    assert waits_for("migrate") == {
        "postgresql": "service_healthy",
        "temporal": "service_healthy",
    }
    for name in {"api"} | WORKERS:
        assert waits_for(name)["migrate"] == "service_completed_successfully", name
        assert waits_for(name)["temporal"] == "service_healthy", name


def test_migrate_runs_migrate_and_api_runs_api(services: dict[str, dict[str, Any]]) -> None:
    assert services["migrate"]["command"] == ["migrate"]
    assert services["api"]["command"] == ["api"]


def test_our_services_share_one_image_and_run_in_production(
    services: dict[str, dict[str, Any]],
) -> None:
    our_services = ours(services)
    assert set(our_services) == {"migrate", "api"} | WORKERS
    images = {
        json.dumps([spec["image"], spec["build"]], sort_keys=True) for spec in our_services.values()
    }
    assert len(images) == 1, "every OpsConductor service runs the same image"
    for name, spec in our_services.items():
        environment = spec["environment"]
        assert environment["OPSCONDUCTOR_ENV"] == "production", name
        assert environment["OPSCONDUCTOR_LOG_FORMAT"] == "json", name
        assert environment["OPSCONDUCTOR_TEMPORAL_ADDRESS"] == "temporal:7233", name


def compose_settings(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a service's process reads from its compose environment."""
    environment = spec["environment"]
    assert isinstance(environment, dict)
    for name in list(os.environ):
        if name.startswith("OPSCONDUCTOR_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, interpolate(str(value), DUMMY_SECRETS))
    return Settings()


def test_workers_are_not_killed_before_their_running_steps_had_the_grace(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in WORKERS:
        grace = compose_settings(services[name], monkeypatch).worker_shutdown_grace
        # A step with the default timeout fits in the grace, and the cut-off ones get time
        # to stop their remote commands and report before Docker's SIGKILL.
        assert grace >= DEFAULT_STEP_TIMEOUT, name
        stop = duration(services[name]["stop_grace_period"])
        assert stop >= grace + timedelta(seconds=30), f"{name} would be killed mid-grace"


def test_required_secrets_refuse_to_start_when_unset(raw_compose: str) -> None:
    for name in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{" + name + r"(?P<op>[^A-Za-z0-9_][^}]*)?\}", raw_compose)
        assert uses, f"{name} is not used"
        for op in uses:
            assert op.startswith(":?"), f"${{{name}{op}}} lets compose start without it"
        env = {key: value for key, value in DUMMY_SECRETS.items() if key != name}
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw_compose, env)
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw_compose, {**env, name: ""})


def test_temporal_ui_decodes_through_the_api_codec_endpoint(
    services: dict[str, dict[str, Any]],
) -> None:
    ui, api = services["temporal-ui"], services["api"]
    api_port = int(api["environment"]["OPSCONDUCTOR_API_PORT"])
    # The browser calls the codec endpoint, so it is the API's published port on localhost.
    assert published(api)[api_port] == 8000
    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"] == "http://localhost:8000/codec"
    assert ui["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    ui_port = published(ui)[8080]
    assert ui_port == 8233
    origins = api["environment"]["OPSCONDUCTOR_CODEC_CORS_ORIGINS"].split(",")
    assert f"http://localhost:{ui_port}" in origins


def test_temporal_and_the_api_use_the_compose_postgresql(
    services: dict[str, dict[str, Any]],
) -> None:
    postgres = services["postgresql"]["environment"]
    temporal = services["temporal"]["environment"]
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["DB_PORT"] == "5432"
    assert temporal["POSTGRES_USER"] == postgres["POSTGRES_USER"]
    assert temporal["POSTGRES_PWD"] == postgres["POSTGRES_PASSWORD"]

    url = make_url(
        interpolate(services["api"]["environment"]["OPSCONDUCTOR_DATABASE_URL"], DUMMY_SECRETS)
    )
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port) == ("postgresql", 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == DUMMY_SECRETS["POSTGRES_PASSWORD"]
    assert url.database == postgres["POSTGRES_DB"]


def test_temporal_dynamic_config_is_the_one_mounted(services: dict[str, dict[str, Any]]) -> None:
    temporal = services["temporal"]
    config_path = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = [str(volume).split(":") for volume in temporal["volumes"]]
    (host_dir,) = [
        source for source, target, *_ in mounts if target == "/etc/temporal/config/dynamicconfig"
    ]
    assert config_path.startswith("config/dynamicconfig/")
    config_file = ROOT / host_dir / Path(config_path).name
    settings = yaml.safe_load(config_file.read_text())
    assert isinstance(settings, dict)
    for key, values in settings.items():
        assert isinstance(values, list), key
        assert all("value" in item for item in values), key


@pytest.mark.parametrize("service", sorted({"migrate", "api"} | WORKERS))
def test_settings_accept_the_compose_environment_in_production(
    service: str, services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = compose_settings(services[service], monkeypatch)

    assert settings.env is Environment.production
    assert settings.database_url is not None
    assert settings.temporal_address == "temporal:7233"
    assert settings.master_keys_old == []
    keys = load_process_keys(settings)
    assert keys.master_key == bytes(range(32))
    if service == "api":
        assert settings.api_host == "0.0.0.0"
        assert "http://localhost:8233" in settings.codec_cors_origins
    if service in WORKERS:
        # Reachable from a Prometheus in the compose network, where /metrics of the API is too.
        assert settings.worker_metrics_address == "0.0.0.0:9464"


# ----------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> Iterator[Instruction]:
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, arguments = logical.partition(" ")
        yield Instruction(keyword.upper(), arguments.strip())
        logical = ""


def stages(text: str) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_dockerfile_builds_in_stages(dockerfile: str) -> None:
    built = stages(dockerfile)
    assert len(built) >= 2
    names = [stage[0].arguments.split()[-1] for stage in built]
    assert names[0] == "builder"
    assert names[-1] == "runtime"
    runtime = built[-1]
    copied_from_builder = [
        i.arguments for i in runtime if i.keyword == "COPY" and "--from=builder" in i.arguments
    ]
    assert any("/opt/venv" in arguments for arguments in copied_from_builder)
    assert any(arguments.endswith("/app /app") for arguments in copied_from_builder)


def test_the_image_ships_the_package_compiled(dockerfile: str) -> None:
    """The runtime writes no bytecode (read-only code, PYTHONDONTWRITEBYTECODE), and the
    workflow sandbox imports the workflow modules anew for every workflow run: without
    compiled bytecode in /app each run would compile them from source (docs/engine.md,
    "A run's round trips")."""
    builder = stages(dockerfile)[0]
    assert any(
        i.keyword == "RUN" and "compileall" in i.arguments and "/app/opsconductor" in i.arguments
        for i in builder
    )


def test_dockerfile_runs_as_a_non_root_user(dockerfile: str) -> None:
    runtime = stages(dockerfile)[-1]
    users = [i.arguments for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage must switch user"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"


def test_dockerfile_entrypoint_is_opsconductor(dockerfile: str, services: dict[str, Any]) -> None:
    runtime = stages(dockerfile)[-1]
    (entrypoint,) = [i.arguments for i in runtime if i.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["opsconductor"]
    assert all("entrypoint" not in spec for spec in ours(services).values())


def test_dockerfile_defaults_to_production_and_has_the_tools_workers_run(dockerfile: str) -> None:
    runtime = stages(dockerfile)[-1]
    environment = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    assert "OPSCONDUCTOR_ENV=production" in shlex.split(environment)
    installs = " ".join(i.arguments for i in runtime if i.keyword == "RUN")
    assert "nmap" in installs.split()
    assert "openssh-client" in installs.split()


def test_dockerfile_keeps_migrations_beside_the_package(dockerfile: str) -> None:
    # opsconductor/schema.py finds alembic.ini and migrations/ next to the package directory.
    builder = stages(dockerfile)[0]
    copies = [i.arguments for i in builder if i.keyword == "COPY"]
    assert "opsconductor ./opsconductor" in copies
    assert "migrations ./migrations" in copies
    assert any("alembic.ini" in arguments.split()[:-1] for arguments in copies)
    workdirs = [i.arguments for i in builder if i.keyword == "WORKDIR"]
    assert workdirs[-1] == "/app"
    installs = " ".join(i.arguments for i in builder if i.keyword == "RUN")
    assert "--editable /app" in installs


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        candidates = [path]
        if body.startswith("**/"):
            body = body[3:]
            candidates = [path, *path.split("/")]
        if any(fnmatch.fnmatchcase(candidate, body) for candidate in candidates):
            ignored = not negated
    return ignored


def test_dockerignore_sends_only_what_the_image_needs(dockerfile: str) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    sources = []
    for instruction in dockerfile_instructions(dockerfile):
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments:
            *paths, _destination = instruction.arguments.split()
            sources += paths
    assert sources
    for source in sources:
        assert not _ignored(source, patterns), f"{source} is copied but ignored"
    for private in (".env", ".venv", ".git", ".opsconductor", "tests", "opsconductor.egg-info"):
        assert _ignored(private, patterns), f"{private} would be sent to the build"
    assert _ignored("opsconductor/__pycache__", patterns)
