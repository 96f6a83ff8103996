"""The benchmarks' one entry point: `python -m benchmarks [--only B1,B3] [--quick] ...`.

It starts everything it measures (PostgreSQL, Temporal, the API and a worker as processes of
their own, the loopback sshd, an HTTP receiver; ansible-core in /tmp/bench-ansible) in a fresh
working directory, runs the chosen benchmarks with their baselines, prints a table and, with
`--markdown FILE`, writes it as Markdown with the date, the machine and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shlex
import signal
import sys
import tempfile
from pathlib import Path

import psutil

from benchmarks.b1_ssh import bench_b1
from benchmarks.b2_throughput import bench_b2
from benchmarks.b3_scale import bench_b3
from benchmarks.b4_api import bench_b4
from benchmarks.b5_output import bench_b5
from benchmarks.fleet import Row
from benchmarks.stack import Stack, running_stack
from opsconductor.temporal.client import connect

BENCHMARKS = ("B1", "B2", "B3", "B4", "B5")


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse(arguments: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="e.g. B1,B3 (default all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--repeats", type=int, help="B1 repeats per size (default 3, quick 1)")
    parser.add_argument("--b1-sizes", type=_sizes, help="targets per B1 run (default 20,100,200)")
    parser.add_argument("--b2-runs", type=int, help="B2 runs (default 500)")
    parser.add_argument("--b2-inflight", type=int, help="B2 runs in flight (default 25)")
    parser.add_argument("--b3-sizes", type=_sizes, help="B3 targets (default 1000,10000)")
    parser.add_argument("--b5-sizes", type=_sizes, help="B5 targets (default 200)")
    parser.add_argument("--b4-targets", type=int, help="B4 targets (default 10000)")
    parser.add_argument("--b4-runs", type=int, help="B4 planted runs (default 100000)")
    parser.add_argument("--b4-clients", type=int, default=50, help="B4 concurrent clients")
    parser.add_argument("--b4-requests", type=int, help="B4 requests per client (default 20)")
    parser.add_argument(
        "--api-workers", type=int, default=1, help="API processes (`opsconductor api --workers`)"
    )
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--markdown", type=Path, help="also write the results here")
    options = parser.parse_args(arguments)
    quick = options.quick
    defaults = {
        "repeats": 1 if quick else 3,
        "b1_sizes": [20] if quick else [20, 100, 200],
        "b2_runs": 50 if quick else 500,
        "b2_inflight": 10 if quick else 25,
        "b3_sizes": [1000] if quick else [1000, 10_000],
        "b4_targets": 1000 if quick else 10_000,
        "b5_sizes": [20] if quick else [200],
        "b4_runs": 10_000 if quick else 100_000,
        "b4_requests": 4 if quick else 20,
    }
    for name, value in defaults.items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    options.only = [name.strip().upper() for name in options.only.split(",") if name.strip()]
    unknown = set(options.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from B1..B5")
    return options


async def measure(stack: Stack, options: argparse.Namespace) -> list[Row]:
    temporal = await connect(stack.settings)
    rows: list[Row] = []
    if "B1" in options.only:
        rows += await bench_b1(stack, temporal, options.b1_sizes, options.repeats)
    if "B2" in options.only:
        rows += await bench_b2(stack, temporal, options.b2_runs, options.b2_inflight)
    if "B3" in options.only:
        rows += await bench_b3(stack, temporal, options.b3_sizes)
    if "B4" in options.only:
        rows += await bench_b4(
            stack, options.b4_targets, options.b4_runs, options.b4_clients, options.b4_requests
        )
    if "B5" in options.only:
        rows += await bench_b5(stack, temporal, options.b5_sizes)
    return rows


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def table(rows: list[Row]) -> list[list[str]]:
    lines = [["bench", "case", "measure", "unit", "ours", "baseline", "ratio", "aim"]]
    for row in rows:
        baseline = f"{_number(row.baseline)} ({row.baseline_name})" if row.baseline_name else ""
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            [
                row.benchmark,
                row.case,
                row.measure,
                row.unit,
                _number(row.ours),
                baseline,
                ratio,
                row.aim,
            ]
        )
    return lines


def plain(lines: list[list[str]]) -> str:
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{psutil.cpu_count(logical=True)} cores ({platform.processor() or platform.machine()}), "
        f"{memory:.0f} GiB memory, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average at start "
        f"{', '.join(f'{value:.2f}' for value in os.getloadavg())}"
    )


def markdown(lines: list[list[str]], command: str, about: str) -> str:
    header, *body = lines
    text = [
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {about}  ",
        f"Command: `{command}`",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    text += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(text) + "\n"


def main(arguments: list[str] | None = None) -> int:
    given = sys.argv[1:] if arguments is None else arguments
    options = parse(given)
    # A SIGTERM (a timeout, a Ctrl-C from a supervisor) must still stop what the stack started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    about = machine()
    command = shlex.join(["python", "-m", "benchmarks", *given])
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="opsc-bench-"))
    print(f"working directory {workdir}; {about}", file=sys.stderr)
    with running_stack(workdir, options.api_workers) as stack:
        rows = asyncio.run(measure(stack, options))
    lines = table(rows)
    print(plain(lines))
    if options.markdown is not None:
        options.markdown.write_text(markdown(lines, command, about))
    return 0
