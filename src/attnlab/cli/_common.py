"""Helpers shared by the CLI commands: JSON output and one-line errors."""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
import tempfile
import traceback

import typer
from rich.markup import escape


def table(*headers: str, **kw):
    """A rich table whose cells wrap instead of being cut: at 80 columns rich shortens a word that does not
    fit to "deltane…", which can make two rows (two run names) read the same."""
    from rich.table import Column, Table

    return Table(*(Column(h, overflow="fold") for h in headers), **kw)


def emit(data: dict, as_json: bool, title: str = "") -> None:
    """Print ``data`` as JSON (machine-readable) or as a small table."""
    if as_json:
        typer.echo(json.dumps(data, indent=None, allow_nan=True))
        return
    from rich.console import Console

    t = table("quantity", "value", title=title or None)
    for k, v in data.items():
        t.add_row(escape(str(k)), escape(f"{v:.10g}" if isinstance(v, float) else str(v)))
    Console().print(t)


DEBUG_ENV = "ATTNLAB_DEBUG"


def debugging() -> bool:
    """``attnlab --debug …`` (or ``ATTNLAB_DEBUG=1``): failures show their full traceback."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _oserror_line(e: OSError) -> str:
    what = e.strerror or str(e) or type(e).__name__
    if e.errno == errno.ENOSPC:
        what = "no space left on the device (finished files and checkpoints are kept)"
    where = f": {e.filename}" if e.filename else ""
    return f"{what}{where}"


def one_line_errors(fn):
    """Every failure as one line on stderr and a non-zero exit: the library's ``ValueError``/``TypeError``
    (a bad setting or input, exit 2) and file-system errors (a missing, unreadable or full path, exit 1) as
    ``error: …``; anything unexpected as one line that says where its full traceback was written. With
    ``--debug`` the traceback is printed instead."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            if debugging():
                raise
            if isinstance(e, (ValueError, TypeError)):
                print(f"error: {e}", file=sys.stderr)
                raise typer.Exit(2) from None
            if isinstance(e, OSError):
                print(f"error: {_oserror_line(e)}", file=sys.stderr)
                raise typer.Exit(1) from None
            fd, path = tempfile.mkstemp(prefix="attnlab-error-", suffix=".txt")
            with os.fdopen(fd, "w") as f:
                traceback.print_exc(file=f)
            first = str(e).splitlines()[0] if str(e) else ""
            print(f"error: unexpected {type(e).__name__}: {first} (full traceback in {path}; rerun with --debug to "
                  "print it)", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper


def quiet_libraries() -> None:
    """Silence the progress bars and notices that transformers, the hub and tqdm print while a model
    loads (GGUF de-quantisation draws one bar per tensor batch): the command shows its own status line.
    Call before the libraries are imported (tqdm reads its setting on import); it changes this process (and those it
    starts) and keeps any value the user set."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # read by tqdm when it is imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
