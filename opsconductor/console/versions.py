"""The difference between any two versions of a job's document, as a unified diff whose
lines say in words, not only in colour, whether they were added or removed."""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

# Lines of context kept around each change, as `diff -u` does.
CONTEXT = 3


@dataclass(frozen=True)
class DiffLine:
    # "added", "removed", "same" or "hunk" (the @@ line saying where a change is).
    change: str
    text: str

    @property
    def sign(self) -> str:
        return {"added": "+", "removed": "-", "same": " "}.get(self.change, "")


@dataclass(frozen=True)
class VersionDiff:
    old: int
    new: int
    lines: list[DiffLine]

    @property
    def added(self) -> int:
        return sum(line.change == "added" for line in self.lines)

    @property
    def removed(self) -> int:
        return sum(line.change == "removed" for line in self.lines)


def _line(raw: str) -> DiffLine:
    if raw.startswith("@@"):
        return DiffLine("hunk", raw)
    change = {"+": "added", "-": "removed"}.get(raw[:1], "same")
    return DiffLine(change, raw[1:])


def version_diff(documents: Mapping[int, str], old: int, new: int) -> VersionDiff | None:
    """How version `new`'s document (YAML text) differs from version `old`'s; None unless both
    versions exist."""
    if old not in documents or new not in documents:
        return None
    raw = difflib.unified_diff(
        documents[old].splitlines(), documents[new].splitlines(), lineterm="", n=CONTEXT
    )
    # The two file header lines (--- and +++) name what the page's heading already says.
    lines = [_line(text) for number, text in enumerate(raw) if number >= 2]
    return VersionDiff(old, new, lines)
