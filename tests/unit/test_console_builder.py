"""The job builder's forms from JSON Schema, a form back into a step, and the DAG layout."""

from opsconductor.console.builder import (
    GAP_X,
    NODE_WIDTH,
    dag_of,
    fields_of,
    form_field_of,
    pruned,
    replaced,
    step_from_form,
    values_of,
)
from opsconductor.console.pages import _local, when
from opsconductor.console.versions import version_diff
from opsconductor.jobspec.plugins import known_actions


def test_every_action_schema_gives_one_field_per_property() -> None:
    for name, spec in known_actions().items():
        schema = spec.with_schema()
        fields = fields_of(schema)
        assert [f.name for f in fields] == [f"with.{p}" for p in schema.get("properties", {})], name


def test_http_request_fields_and_their_values_become_a_step() -> None:
    fields = {f.name: f for f in fields_of(known_actions()["http.request"].with_schema())}
    assert fields["with.method"].kind == "select"
    assert "POST" in fields["with.method"].options
    assert fields["with.url"].required
    assert fields["with.expect_status"].kind == "list"
    assert fields["with.headers"].kind == "yaml"
    step = step_from_form(
        "http.request",
        list(fields.values()),
        {
            "step.id": " ping ",
            "with.url": "http://example.test/",
            "with.expect_status": "200, 204",
            "with.headers": "X-A: b",
            "with.body": "",
        },
        ["before"],
    )
    assert step == {
        "id": "ping",
        "action": "http.request",
        "needs": ["before"],
        "with": {
            "url": "http://example.test/",
            "headers": {"X-A": "b"},
            "expect_status": [200, 204],
        },
    }


def test_a_validation_path_of_the_new_step_names_its_form_field() -> None:
    assert form_field_of("steps.2.with.command", 2) == "with.command"
    assert form_field_of("steps.2.needs.0", 2) == "step.needs"
    assert form_field_of("steps.1.with.command", 2) is None
    assert form_field_of("name", 2) is None


def test_the_dag_puts_each_step_right_of_what_it_needs() -> None:
    dag = dag_of(
        [
            {"id": "a"},
            {"id": "b", "needs": ["a"]},
            {"id": "c", "needs": ["a"]},
            {"id": "d", "needs": ["b", "c", "missing"]},
            {"id": "loop", "needs": ["loop"]},
        ]
    )
    columns = {node["id"]: node["x"] // (NODE_WIDTH + GAP_X) for node in dag.nodes}
    assert columns == {"a": 0, "b": 1, "c": 1, "d": 2, "loop": 0}
    assert len(dag.edges) == 4


def test_after_login_only_a_path_on_this_site_is_followed() -> None:
    assert _local("/runs?status=failed") == "/runs?status=failed"
    for elsewhere in ("https://evil.test/", "//evil.test/", "/\\evil.test/", "runs"):
        assert _local(elsewhere) == "/"


def test_a_stored_document_is_shown_without_its_unset_fields() -> None:
    stored = {"name": "x", "parameters": {}, "steps": [{"id": "a", "when": None, "needs": []}]}
    assert pruned(stored) == {"name": "x", "steps": [{"id": "a"}]}


def test_timestamps_are_shown_in_utc() -> None:
    assert when("2026-11-27T05:00:00+01:00") == "2026-11-27 04:00:00 UTC"
    assert when(None) == "—"


def test_an_existing_step_fills_the_form_that_gives_it_back() -> None:
    fields = fields_of(known_actions()["http.request"].with_schema())
    step = {
        "id": "ping",
        "action": "http.request",
        "needs": ["before"],
        "timeout": "5m",
        "retry": {"attempts": 3},
        "with": {"url": "http://example.test/", "expect_status": [200, 204]},
    }
    values = values_of(step, fields)
    assert values["with.expect_status"] == "200, 204"
    assert values["step.retry"] == "attempts: 3"
    assert step_from_form("http.request", fields, values, ["before"]) == step


def test_a_renamed_step_is_renamed_in_the_others_needs() -> None:
    steps = [{"id": "a"}, {"id": "b", "needs": ["a"]}, {"id": "c"}]
    assert replaced(steps, "a", {"id": "z"}) == [
        {"id": "z"},
        {"id": "b", "needs": ["z"]},
        {"id": "c"},
    ]


def test_any_two_versions_are_diffed_with_each_line_marked() -> None:
    documents = {1: "name: x\nsteps: []\n", 2: "name: x\n", 3: "name: y\nsteps: []\n"}
    changes = version_diff(documents, 1, 3)
    assert changes is not None
    assert [(line.change, line.text) for line in changes.lines if line.change != "hunk"] == [
        ("removed", "name: x"),
        ("added", "name: y"),
        ("same", "steps: []"),
    ]
    assert (changes.added, changes.removed) == (1, 1)
    assert version_diff(documents, 1, 4) is None
