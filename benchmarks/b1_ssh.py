"""B1: one `ssh.command` (`hostname`) over N separate targets on the loopback sshd, against
ansible-core ad-hoc `-m raw` with forks = N, and against asyncssh with asyncio.gather (the
floor). Each repeat runs the three one after another, so machine noise hits them alike."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import httpx
from temporalio.client import Client

from benchmarks.fleet import Row, median, plant_targets, run_job, save_job, ssh_key_credential
from benchmarks.stack import Stack

ANSIBLE_VENV = Path("/tmp/bench-ansible")


def ensure_ansible() -> Path:
    """ansible-core in a virtual environment of its own; its `ansible` command."""
    command = ANSIBLE_VENV / "bin" / "ansible"
    if not command.exists():
        print(f"installing ansible-core into {ANSIBLE_VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run(
            [str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", "ansible-core"], check=True
        )
    return command


def _inventory(stack: Stack, size: int) -> Path:
    sshd = stack.sshd
    path = stack.workdir / f"inventory-{size}.ini"
    lines = ["[fleet]"]
    lines += [
        f"b1-{size}-{index:05d} ansible_host={sshd.host} ansible_port={sshd.port}"
        for index in range(size)
    ]
    lines += [
        "[fleet:vars]",
        f"ansible_user={sshd.username}",
        f"ansible_ssh_private_key_file={sshd.client_key_path}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_ansible(stack: Stack, ansible: Path, size: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (ansible and its ssh children) of one ad-hoc run."""
    home = stack.workdir / "ansible-home"
    environment = {
        **os.environ,
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        # No ControlPersist: each run opens its connections, as ours and asyncssh's do.
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o UserKnownHostsFile=/dev/null",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CONFIG": str(home / "none.cfg"),
    }
    arguments = [str(ansible), "fleet", "-i", str(_inventory(stack, size)), "-m", "raw"]
    arguments += ["-a", "hostname", "-f", str(size), "-o"]
    before = os.times()
    started = time.perf_counter()
    result = subprocess.run(arguments, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    if result.returncode != 0 or result.stdout.count("rc=0") != size:
        raise RuntimeError(f"ansible failed ({result.returncode}): {result.stdout[-2000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


async def run_asyncssh(stack: Stack, size: int) -> tuple[float, float]:
    """Wall and CPU seconds of N connections opened and N `hostname` run with gather."""
    sshd = stack.sshd
    key = asyncssh.read_private_key(str(sshd.client_key_path))

    async def one() -> str:
        async with asyncssh.connect(
            sshd.host,
            sshd.port,
            username=sshd.username,
            client_keys=[key],
            known_hosts=None,
            agent_path=None,
            config=None,
        ) as connection:
            result = await connection.run("hostname", check=True)
            return str(result.stdout)

    cpu_before = time.process_time()
    started = time.perf_counter()
    outputs = await asyncio.gather(*(one() for _ in range(size)))
    wall = time.perf_counter() - started
    assert len(outputs) == size
    return wall, time.process_time() - cpu_before


async def bench_b1(stack: Stack, temporal: Client, sizes: list[int], repeats: int) -> list[Row]:
    ansible = ensure_ansible()
    rows: list[Row] = []
    async with httpx.AsyncClient(timeout=60) as http:
        credential_id = await ssh_key_credential(http, stack, "bench-ssh-key")
        for size in sizes:
            # Host keys pinned as after a first run: TOFU pinning is not what is measured.
            await plant_targets(
                stack,
                f"b1-{size}",
                size,
                stack.sshd.port,
                credential_id=credential_id,
                host_key_fingerprint=stack.sshd.host_key_fingerprint,
            )
            job_id = await save_job(
                http,
                stack,
                {
                    "name": f"b1-hostname-{size}",
                    "targets": {"tags": {"fleet": f"b1-{size}"}},
                    "strategy": {"concurrency": size},
                    "steps": [
                        {"id": "name", "action": "ssh.command", "with": {"command": "hostname"}}
                    ],
                },
            )
            ours: list[float] = []
            ours_cpu: dict[str, list[float]] = {name: [] for name in stack.processes}
            theirs: list[float] = []
            theirs_cpu: list[float] = []
            floor: list[float] = []
            floor_cpu: list[float] = []
            for _ in range(repeats):
                before = stack.cpu_seconds()
                _, wall = await run_job(http, stack, temporal, job_id)
                after = stack.cpu_seconds()
                ours.append(wall)
                for name in stack.processes:
                    ours_cpu[name].append(after[name] - before[name])
                wall, cpu = await asyncio.to_thread(run_ansible, stack, ansible, size)
                theirs.append(wall)
                theirs_cpu.append(cpu)
                wall, cpu = await run_asyncssh(stack, size)
                floor.append(wall)
                floor_cpu.append(cpu)
            case = f"N={size}"
            rows.append(
                Row("B1", case, "wall", median(ours), median(theirs), "ansible", aim="≤ 0.6")
            )
            rows.append(
                Row("B1", case, "wall", median(ours), median(floor), "asyncssh", aim="≤ 1.25")
            )
            total_cpu = [sum(values) for values in zip(*ours_cpu.values(), strict=True)]
            rows.append(
                Row(
                    "B1",
                    case,
                    "CPU s (api+worker+temporal)",
                    median(total_cpu),
                    median(theirs_cpu),
                    "ansible",
                )
            )
            rows.append(Row("B1", case, "CPU s (asyncssh floor)", median(floor_cpu)))
            for name, values in ours_cpu.items():
                rows.append(Row("B1", case, f"CPU s {name}", median(values)))
    return rows
