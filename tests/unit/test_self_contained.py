"""The repository stands on its own: a clone with nothing beside it has every document, example
and path its files name."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A Markdown link's target: [text](target) or [text](target#anchor).
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    return [ROOT / name.decode() for name in listed if name]


def test_no_file_names_a_path_outside_the_repository():
    # Spelled in pieces so this file does not name the folder it looks for.
    sibling = "shared"
    outside = re.compile(rf"\.\./{sibling}\b|{sibling}/(design|examples)\b")
    offences = []
    for path in tracked_files():
        if not path.is_file() or path.suffix in {".png", ".ico", ".gz"}:
            continue
        text = path.read_text(errors="replace")
        offences += [
            f"{path.relative_to(ROOT)}:{number}"
            for number, line in enumerate(text.splitlines(), 1)
            if outside.search(line)
        ]
    assert offences == []


def test_every_relative_link_in_the_docs_resolves_inside_the_repository():
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    documents += sorted((ROOT / "examples").glob("*.md"))
    broken = []
    for document in documents:
        for target in MARKDOWN_LINK.findall(document.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (document.parent / target).resolve()
            if not resolved.exists() or ROOT not in resolved.parents:
                broken.append(f"{document.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_examples_the_docs_promise_are_in_the_repository():
    examples = sorted(path.name for path in (ROOT / "examples").glob("*.yaml"))
    assert {"disk-report.yaml", "safe-restart.yaml"} <= set(examples)
