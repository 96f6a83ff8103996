"""Templates are sandboxed, strict about undefined names, and never resolve secrets by default."""

import pytest

from opsconductor.jobspec.durations import format_duration, parse_duration
from opsconductor.jobspec.templates import (
    TemplateProblem,
    render,
    render_condition,
    render_value,
)


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ params.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% set x = params.update({'a': 1}) %}",
    ],
)
def test_the_sandbox_refuses_internals_and_mutation(attack: str) -> None:
    with pytest.raises(TemplateProblem):
        render(attack, {"params": {"a": 0}})


def test_quote_makes_parameters_safe_for_a_shell() -> None:
    rendered = render(
        "systemctl restart {{ params.service | quote }}", {"params": {"service": "x; rm -rf /"}}
    )
    assert rendered == "systemctl restart 'x; rm -rf /'"


def test_undefined_names_fail_instead_of_rendering_empty() -> None:
    with pytest.raises(TemplateProblem, match="'nothing' is undefined"):
        render("echo {{ nothing }}", {})


def test_secrets_resolve_only_where_a_resolver_is_given() -> None:
    with pytest.raises(TemplateProblem, match="resolved only inside"):
        render("{{ secret('db') }}", {})
    assert render("{{ secret('db') }}", {}, secrets=lambda name: f"<{name}>") == "<db>"


def test_render_value_keeps_the_shape_of_json_bodies() -> None:
    body = {"job": "{{ job.name }}", "counts": [1, "{{ 1 + 1 }}"], "flag": True}
    assert render_value(body, {"job": {"name": "nightly"}}) == {
        "job": "nightly",
        "counts": [1, "2"],
        "flag": True,
    }


def test_conditions_must_render_to_a_boolean_word() -> None:
    assert render_condition("{{ 3 > 2 }}", {}) is True
    assert render_condition("{{ steps.a.failed }}", {"steps": {"a": {"failed": False}}}) is False
    with pytest.raises(TemplateProblem, match="must render to true or false"):
        render_condition("{{ 'maybe' }}", {})


def test_durations_read_and_write_the_short_form() -> None:
    assert parse_duration("1h30m").total_seconds() == 5400
    assert format_duration(parse_duration("90s")) == "1m30s"
    assert format_duration(parse_duration("250ms")) == "250ms"
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ('x' * 100000) * 100000 }}",
        "{{ [0] * 10 ** 9 }}",
        "{{ 2 ** (10 ** 10) }}",
        "{{ 'x'.ljust(10 ** 10) }}",
        "{{ 'x' | center(10 ** 10) }}",
        "{{ lipsum(n=10 ** 8) }}",
        "{{ '%9999999999d' % 1 }}",
        "{{ '%9999999999d' | format(1) }}",
        "{{ '{:>9999999999}'.format(1) }}",
    ],
)
def test_templates_cannot_allocate_gigabytes(attack: str) -> None:
    with pytest.raises(TemplateProblem):
        render(attack, {})


def test_ordinary_arithmetic_and_formatting_still_render() -> None:
    rendered = render(
        "{{ 'ab' * 2 }} {{ 2 ** 10 }} {{ '%03d' % 7 }} {{ 'v{}'.format(1) }} {{ 'x' | center(3) }}",
        {},
    )
    assert rendered == "abab 1024 007 v1  x "


@pytest.mark.parametrize(
    "text", ["3651d", "99999999999999999999d", "89498071926h15h85ms5s5216h88d"]
)
def test_durations_past_ten_years_are_refused_not_overflowed(text: str) -> None:
    with pytest.raises(ValueError, match="is longer than 3650d"):
        parse_duration(text)
