"""OpsConductor: durable automation for operations teams."""

import functools


@functools.cache
def _installed_version() -> str:
    # Read on first use, not on import: importlib.metadata costs the CLI's `--help` a tenth of
    # its start-up, and only the server and `up` print the version.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opsconductor")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
