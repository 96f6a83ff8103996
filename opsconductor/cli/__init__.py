"""The `opsconductor` command.

It starts fast (docs/cli.md, tests/unit/test_cli_imports.py): commands are imported when they
run (cli/main.py), and two libraries are kept from loading what the CLI never uses.
"""

import os
import sys

# Help as plain text, the way git and kubectl print it: typer's rich formatting loads rich's
# markdown and traceback machinery, a third of every `--help`.
os.environ.setdefault("TYPER_USE_RICH", "0")
# httpx imports its own command-line tool (click, rich, pygments) with the library, half of its
# import time; a None entry makes that import fail, which httpx expects and handles.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
