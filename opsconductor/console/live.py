"""Answers to a form's as-you-type check (`Form.live`): the form's fields, sent by htmx as a
query, go to an API route that validates and computes without changing anything (a GET, so
nothing is audited); its answer is drawn by a template, and each problem it names
(`query.<field>`) is put at that field's error slot by an out-of-band swap."""

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.responses import HTMLResponse

from opsconductor.api.deps import API_PREFIX
from opsconductor.console.forms import Field
from opsconductor.console.pages import page
from opsconductor.console.session import ApiError, Console


async def checked(
    console: Console,
    api_path: str,
    query: Mapping[str, str],
    fields: Sequence[Field],
    template: str,
    **context: Any,
) -> HTMLResponse:
    """`template` drawn with the API's `answer`, or with none and the problems at `fields`."""
    problems: dict[str, list[str]] = {field.path: [] for field in fields}
    general = ""
    found = None
    # Not all filled in yet: nothing to say, and no problem to show before anything is typed.
    if all(query.values()):
        answer = await console.api.get(f"{API_PREFIX}{api_path}", params=dict(query))
        if answer.status_code == 422:
            body = answer.json()
            general = body.get("detail", "")
            for problem in body.get("errors", []):
                path = str(problem.get("path", "")).removeprefix("query.")
                problems.setdefault(path, []).append(problem.get("message", ""))
        elif answer.is_success:
            found = answer.json()
        else:
            raise ApiError(answer.status_code, answer.text)
    context.update(answer=found, general=general, fields=fields, problems=problems)
    return page(console, template, **context)
