"""The job builder's forms from JSON Schema, a form back into a step, and the DAG layout."""

from opsconductor.console.builder import (
    GAP_X,
    NODE_WIDTH,
    dag_of,
    fields_of,
    form_field_of,
    pruned,
    step_from_form,
)
from opsconductor.console.pages import _local, when
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
