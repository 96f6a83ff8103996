"""The layers' rules (plan of issue 16), read from the source: every offence with file:line.

- workflows import only contracts, jobspec, temporalio and other workflows: never services,
  db, api, models, activities, nor sqlalchemy / sqlmodel / asyncpg;
- activities never import workflows;
- services never import activities;
- contracts import nothing of opsconductor but contracts and jobspec;
- routers (api/routers) parse, authorize and call a service: they never commit
  (`.commit(`, `commit_or_undo`), never import temporalio or take `TemporalDep`, and never name
  start_workflow / get_workflow_handle / execute_update / signal.
"""

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import opsconductor

ROOT = Path(opsconductor.__file__).parent
PACKAGE = "opsconductor"

DATABASE_LIBRARIES = ("sqlalchemy", "sqlmodel", "asyncpg")
NOT_FOR_WORKFLOWS = tuple(
    f"{PACKAGE}.{name}" for name in ("services", "db", "api", "models", "activities")
)
CONTRACTS_MAY_IMPORT = (f"{PACKAGE}.contracts", f"{PACKAGE}.jobspec")
TEMPORAL_CALLS = frozenset(
    {"start_workflow", "get_workflow_handle", "get_workflow_handle_for", "execute_update"}
)
ROUTER_FORBIDDEN_NAMES = frozenset({"TemporalDep", "commit_or_undo"})


@dataclass(frozen=True, order=True)
class Offence:
    path: str
    line: int
    what: str
    name: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, list[str]]]:
    """(line, absolute modules) of every import statement, relative ones resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, [alias.name]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from opsconductor import services` imports opsconductor.services.
            yield node.lineno, [target, *(f"{target}.{alias.name}" for alias in node.names)]


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def check_source(path: str, source: str) -> list[Offence]:
    """The offences of one module; `path` is relative to the opsconductor package."""
    tree = ast.parse(source, filename=path)
    module = _module_name(path)
    is_package = path.endswith("__init__.py")
    layer = path.split("/")[0] if "/" in path else ""
    offences: list[Offence] = []

    def offend(line: int, what: str, name: str) -> None:
        offences.append(Offence(path, line, what, name))

    for line, names in _imports(tree, module, is_package):
        for rule, broken in _import_rules(layer, path):
            name = next((name for name in names if broken(name)), None)
            if name is not None:
                offend(line, f"{rule} imports {name}", name)
    if path.startswith("api/routers/"):
        offences += _router_offences(path, tree)
    return _unique(offences)


def _import_rules(layer: str, path: str) -> list[tuple[str, Callable[[str], bool]]]:
    rules: list[tuple[str, Callable[[str], bool]]] = []
    if layer == "workflows":
        rules.append(
            (
                "a workflow",
                lambda name: _within(name, NOT_FOR_WORKFLOWS) or _within(name, DATABASE_LIBRARIES),
            )
        )
    if layer == "activities":
        rules.append(("an activity", lambda name: _within(name, (f"{PACKAGE}.workflows",))))
    if layer == "services":
        rules.append(("a service", lambda name: _within(name, (f"{PACKAGE}.activities",))))
    if layer == "contracts":
        rules.append(
            (
                "a contract",
                lambda name: (
                    _within(name, (PACKAGE,))
                    and name != PACKAGE
                    and not _within(name, CONTRACTS_MAY_IMPORT)
                ),
            )
        )
    if path.startswith("api/routers/"):
        rules.append(("a router", lambda name: _within(name, ("temporalio",))))
    return rules


def _router_offences(path: str, tree: ast.AST) -> list[Offence]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "commit":
                found.append(Offence(path, node.lineno, "a router commits (.commit)", "commit"))
            elif node.attr in TEMPORAL_CALLS or node.attr.startswith("signal"):
                what = f"a router names {node.attr}"
                found.append(Offence(path, node.lineno, what, node.attr))
        elif isinstance(node, ast.Name) and node.id in ROUTER_FORBIDDEN_NAMES:
            found.append(Offence(path, node.lineno, f"a router uses {node.id}", node.id))
        elif isinstance(node, ast.alias):
            name = node.name.rsplit(".", 1)[-1]
            if name in ROUTER_FORBIDDEN_NAMES or name in TEMPORAL_CALLS:
                line = getattr(node, "lineno", 0)
                found.append(Offence(path, line, f"a router imports {name}", name))
    return found


def _unique(offences: list[Offence]) -> list[Offence]:
    return sorted(set(offences))


def all_offences() -> list[Offence]:
    offences = []
    for file in sorted(ROOT.rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        offences += check_source(path, file.read_text(encoding="utf-8"))
    return offences


def test_every_layer_keeps_to_its_imports_and_routers_stay_thin() -> None:
    offences = all_offences()
    assert not offences, "layer rules broken:\n" + "\n".join(map(str, offences))


def test_the_checker_catches_each_kind_of_offence() -> None:
    workflow = (
        "import sqlalchemy\n"
        "from opsconductor.services import runs\n"
        "from ..db import unit_of_work\n"
        "from opsconductor.contracts.runs import RunRequest\n"
        "from temporalio import workflow\n"
    )
    assert [(o.line, o.name) for o in check_source("workflows/x.py", workflow)] == [
        (1, "sqlalchemy"),
        (2, "opsconductor.services"),
        (3, "opsconductor.db"),
    ]
    activity = "from opsconductor.workflows.job_run import JobRunWorkflow\n"
    assert [o.line for o in check_source("activities/x.py", activity)] == [1]
    service = "import opsconductor.activities.ssh\nfrom opsconductor.services import jobs\n"
    assert [o.name for o in check_source("services/x.py", service)] == [
        "opsconductor.activities.ssh"
    ]
    contract = "from opsconductor.models.run import Run\nfrom opsconductor.jobspec import plan\n"
    assert [o.line for o in check_source("contracts/x.py", contract)] == [1]
    router = (
        "from temporalio.client import Client\n"
        "from opsconductor.api.deps import TemporalDep\n"
        "from opsconductor.db import commit_or_undo\n"
        "async def route(session, temporal: TemporalDep):\n"
        "    await session.commit()\n"
        "    await commit_or_undo(session, None)\n"
        "    handle = temporal.get_workflow_handle('x')\n"
        "    await handle.execute_update('decide', 1)\n"
        "    await handle.signal('go')\n"
        "    await temporal.start_workflow('w')\n"
    )
    offences = check_source("api/routers/x.py", router)
    assert {o.line for o in offences} == set(range(1, 11)), "\n".join(map(str, offences))
    assert str(offences[0]).startswith("api/routers/x.py:1: ")
    # A thin router is clean.
    thin = (
        "from opsconductor.api.deps import SessionDep, WorkflowsDep\n"
        "from opsconductor.services import runs\n"
        "async def route(session: SessionDep, workflows: WorkflowsDep):\n"
        "    return await runs.cancel_run(session, workflows, 1)\n"
    )
    assert check_source("api/routers/x.py", thin) == []
