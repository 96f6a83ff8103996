"""Library documents for the library tests."""

from __future__ import annotations

from typing import Any


def tools_library(version: str = "1.0.0", greeting: str = "hello") -> dict[str, Any]:
    """`tools`: a one-step `greet` and a two-step `count` whose second step reads the first."""
    return {
        "name": "tools",
        "version": version,
        "description": f"Test tools {version}",
        "steps": {
            "greet": {
                "description": "Greets someone",
                "parameters": {"who": {"type": "string", "default": "world"}},
                "outputs": {"stdout": {"description": "The greeting"}},
                "body": [
                    {
                        "id": "say",
                        "action": "ssh.command",
                        "with": {"command": f"echo {greeting} {{{{ params.who | quote }}}}"},
                    }
                ],
            },
            "count": {
                "parameters": {
                    "word": {"type": "string", "required": True},
                    "times": {"type": "integer", "default": 2, "minimum": 1},
                },
                "outputs": {"stdout": {}},
                "body": [
                    {
                        "id": "echo",
                        "action": "ssh.command",
                        "with": {"command": "echo {{ params.word }}-{{ target.name }}"},
                    },
                    {
                        "id": "total",
                        "needs": ["echo"],
                        "action": "ssh.command",
                        "with": {"command": "echo {{ steps.echo.stdout }} {{ params.times * 2 }}"},
                    },
                ],
            },
        },
    }
