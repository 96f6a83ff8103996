"""Running `opsconductor` commands that work straight on the database, as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_database_cli(
    database_url: str, data_dir: Path, *arguments: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPSCONDUCTOR_")}
    env |= {"OPSCONDUCTOR_DATABASE_URL": database_url, "OPSCONDUCTOR_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "opsconductor", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        # No controlling terminal, so a password prompt reads the piped stdin.
        start_new_session=True,
        check=False,
    )
