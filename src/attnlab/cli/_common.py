"""Helpers shared by the CLI commands: JSON output and one-line errors."""

from __future__ import annotations

import functools
import json
import sys

import typer


def emit(data: dict, as_json: bool, title: str = "") -> None:
    """Print ``data`` as JSON (machine-readable) or as a small table."""
    if as_json:
        typer.echo(json.dumps(data, indent=None, allow_nan=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("quantity", "value", title=title or None)
    for k, v in data.items():
        table.add_row(k, f"{v:.10g}" if isinstance(v, float) else str(v))
    Console().print(table)


def one_line_errors(fn):
    """Turn ``ValueError``/``TypeError`` from the library into ``error: …`` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError) as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper
