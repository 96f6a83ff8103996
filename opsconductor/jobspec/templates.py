"""Templates in job documents: sandboxed Jinja2 with strict undefined and a `quote` filter.

The sandbox refuses attribute access to internals (`''.__class__` and friends) and the
environment is immutable, so a template can read its context and nothing else. `secret('name')`
is answered only where a resolver is given (inside an activity, on the worker); everywhere else,
the workflow included, it is an error, so a secret can never land in workflow history.
"""

import math
import re
import shlex
from collections.abc import Callable, Mapping
from functools import lru_cache, wraps
from typing import Annotated, Any, TypeAlias, TypeVar

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import StringConstraints

TEMPLATE_MARKERS = re.compile(r"\{\{|\{%")
# Where a typed field (a number, a list) may also be given as a template that renders to one.
TemplateString = Annotated[str, StringConstraints(pattern=TEMPLATE_MARKERS.pattern)]
T = TypeVar("T")
Templated: TypeAlias = T | TemplateString

MAX_RENDERED_CHARACTERS = 1_000_000
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0", ""})

SecretResolver = Callable[[str], str]


class TemplateProblem(ValueError):
    """A template that does not parse, or fails to render against its context."""


def _quote(value: object) -> str:
    return shlex.quote(str(value))


def _no_secrets(name: str) -> str:
    raise TemplateProblem(
        f"secret({name!r}) is resolved only inside an action's `with` block, on the worker"
    )


# A `%` or `{:...}` field padded to millions of characters: `'%9999999999d' % 1`.
_WIDE_FORMAT_FIELD = re.compile(r"(%|\{[^{}]*:)[^a-zA-Z%{}]*\d{7,}")
# 2 ** 100_000 is still cheap; 2 ** 10 ** 10 would take gigabytes.
MAX_POWER_BITS = 100_000


def _refuse_huge(*values: object) -> None:
    """Refuse arguments that would build strings or numbers of gigabytes before the rendered
    size is ever checked: the template runs inside the worker (and the workflow)."""
    for value in values:
        if isinstance(value, int) and abs(value) > MAX_RENDERED_CHARACTERS:
            raise SecurityError(f"{value} is too large an argument for a template")


def _refuse_wide_format(text: object) -> None:
    if isinstance(text, str) and _WIDE_FORMAT_FIELD.search(text):
        raise SecurityError("a format field wider than the rendered output may be")


def _refuse_long_repetition(sized: object, count: object) -> None:
    if (
        isinstance(sized, str | list | tuple)
        and isinstance(count, int)
        and len(sized) * count > MAX_RENDERED_CHARACTERS
    ):
        raise SecurityError("a repetition longer than the rendered output may be")


def _refuse_huge_power(base: object, exponent: object) -> None:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and exponent * math.log2(abs(base)) > MAX_POWER_BITS
    ):
        raise SecurityError("a power larger than a template may compute")


def _bounded_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    # wraps keeps jinja's pass_context/pass_environment marks on the wrapper.
    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _refuse_huge(*args, *kwargs.values())
        if function.__name__ == "do_format" and args:
            _refuse_wide_format(args[-1] if len(args) == 1 else args[0])
        return function(*args, **kwargs)

    return bounded


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, plus bounds on what a template may ask to allocate: `'x' * 10**10`,
    `2 ** 10**10`, `'x'.ljust(10**10)`, `'x' | center(10**10)`, `lipsum(10**8)`."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.filters["quote"] = _quote
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}
        self.globals["secret"] = _no_secrets

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _refuse_long_repetition(left, right)
            _refuse_long_repetition(right, left)
        elif operator == "**":
            _refuse_huge_power(left, right)
        elif operator == "%":
            _refuse_wide_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _refuse_huge(*args, *kwargs.values())
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _refuse_wide_format(value.__self__)
        return wrapped


_environment = _Environment()


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Template:
    # Compiling is most of a render's cost (a parse and Python code generation), and a run
    # renders the same few templates for every target.
    return _environment.from_string(text)


def is_template(value: object) -> bool:
    return isinstance(value, str) and TEMPLATE_MARKERS.search(value) is not None


def syntax_problem(text: str) -> str | None:
    """Why text does not parse as a template, or None when it does."""
    try:
        _environment.parse(text)
    except TemplateSyntaxError as error:
        return f"template syntax error on line {error.lineno}: {error.message}"
    return None


def secret_calls(text: str) -> list[str | None]:
    """The credential names a template's `secret('…')` calls read, in order; None for a use of
    `secret` that is not a call with one literal name (`secret(params.x)`, `f = secret`),
    which no static check can follow. A template that does not parse reads none."""
    if not is_template(text):
        return []
    try:
        tree = _environment.parse(text)
    except TemplateSyntaxError:
        return []
    literal: list[str | None] = [
        str(call.args[0].value)
        for call in tree.find_all(nodes.Call)
        if isinstance(call.node, nodes.Name)
        and call.node.name == "secret"
        and len(call.args) == 1
        and not call.kwargs
        and isinstance(call.args[0], nodes.Const)
        and isinstance(call.args[0].value, str)
    ]
    uses = sum(1 for node in tree.find_all(nodes.Name) if node.name == "secret")
    return literal + [None] * (uses - len(literal))


def referenced_attributes(text: str, name: str) -> set[str]:
    """Attributes a template reads of one context variable, e.g. `steps.<id>` or
    `params.<name>` (for validating references)."""
    tree = _environment.parse(text)
    return {
        node.attr
        for node in tree.find_all(nodes.Getattr)
        if isinstance(node.node, nodes.Name) and node.node.name == name
    }


def referenced_steps(text: str) -> set[str]:
    """Step ids a template reads through `steps.<id>`."""
    return referenced_attributes(text, "steps")


def reads_variable(text: str, name: str) -> bool:
    """Whether a template reads a context variable at all (by any attribute, item or loop)."""
    return any(node.name == name for node in _environment.parse(text).find_all(nodes.Name))


# What a template rendered inside a workflow may not use: each can answer differently when the
# workflow is replayed, and a replay that takes another branch fails the run. (Jinja has no
# clock global; `range`, `cycler`, `joiner` and `namespace` are deterministic.)
NONDETERMINISTIC_FILTERS = frozenset({"random"})
NONDETERMINISTIC_GLOBALS = frozenset({"lipsum"})
# Filters that apply another filter named by a string argument: `xs | map('random')`.
_FILTER_APPLYING = frozenset({"map"})


@lru_cache(maxsize=1024)
def nondeterminism(text: str) -> str | None:
    """Why a template could render differently on a workflow replay, or None. A template that
    does not parse is None here (syntax_problem reports it)."""
    if not is_template(text):
        return None
    try:
        tree = _environment.parse(text)
    except TemplateSyntaxError:
        return None
    used: set[str] = set()
    for node in tree.find_all(nodes.Filter):
        if node.name in NONDETERMINISTIC_FILTERS:
            used.add(f"the {node.name!r} filter")
        elif node.name in _FILTER_APPLYING:
            used.update(
                f"the {arg.value!r} filter"
                for arg in node.args
                if isinstance(arg, nodes.Const) and arg.value in NONDETERMINISTIC_FILTERS
            )
    for name in tree.find_all(nodes.Name):
        if name.name in NONDETERMINISTIC_GLOBALS:
            used.add(f"{name.name}()")
    if not used:
        return None
    return (
        f"uses {', '.join(sorted(used))}, which gives another answer on a replay; a template "
        "the workflow renders (when, strategy.concurrency, control.* with) must be deterministic"
    )


def render(
    text: str,
    context: Mapping[str, Any],
    secrets: SecretResolver | None = None,
    *,
    deterministic: bool = False,
) -> str:
    """`deterministic`: refuse what nondeterminism() names (templates rendered in a workflow;
    validation refuses them earlier, this covers documents stored before it did)."""
    if not is_template(text):
        return text
    if deterministic and (problem := nondeterminism(text)):
        raise TemplateProblem(problem)
    try:
        template = _compiled(text)
        variables = dict(context)
        if secrets is not None:
            variables["secret"] = secrets
        rendered = template.render(variables)
    except TemplateProblem:
        raise
    except TemplateError as error:
        raise TemplateProblem(f"template failed: {error}") from error
    except (TypeError, ValueError, ArithmeticError) as error:
        raise TemplateProblem(f"template failed: {type(error).__name__}: {error}") from error
    if len(rendered) > MAX_RENDERED_CHARACTERS:
        raise TemplateProblem(f"template rendered more than {MAX_RENDERED_CHARACTERS} characters")
    return rendered


def render_value(
    value: Any, context: Mapping[str, Any], secrets: SecretResolver | None = None
) -> Any:
    """Render every string inside a JSON-like value (dicts, lists), keeping its shape."""
    if isinstance(value, str):
        return render(value, context, secrets)
    if isinstance(value, Mapping):
        return {key: render_value(item, context, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context, secrets) for item in value]
    return value


def render_condition(text: str, context: Mapping[str, Any], *, deterministic: bool = False) -> bool:
    """A `when` condition: it must render to true or false (yes/no and 1/0 are accepted)."""
    word = render(text, context, deterministic=deterministic).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise TemplateProblem(f"a condition must render to true or false, got {word[:80]!r}")
