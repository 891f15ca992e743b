"""The ``attnlab`` command line."""

from __future__ import annotations

import typer
from rich.markup import escape

from .. import __version__
from . import bench, theory
from ._common import table
from .analyze import analyze_cmd
from .info import info_cmd
from .inspect_runs import compare_cmd, sample_cmd
from .reproduce import reproduce
from .suite import suite_cmd
from .train import sweep_cmd, train_cmd


def _flags_without_a_type() -> None:
    """Help shows a flag bare: typer (0.29) prints ``<bool>`` beside every flag, ``-h`` included, although
    a flag takes no value. Patched on typer's option class because the help option is built by typer
    itself; every other kind of option keeps its type."""
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_attnlab", False):
        return
    shown = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag and not self.count else shown(self, ctx)

    display_type_rich._attnlab = True
    TyperOption.display_type_rich = display_type_rich


_flags_without_a_type()
app = typer.Typer(
    help="attnlab: a laboratory for attention mechanisms (ops, mixers, theory, claims).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


app.add_typer(theory.app, name="theory")
app.add_typer(bench.app, name="bench")
app.command("reproduce")(reproduce)
app.command("train")(train_cmd)
app.command("sweep")(sweep_cmd)
app.command("analyze")(analyze_cmd)
app.command("suite")(suite_cmd)
app.command("info")(info_cmd)
app.command("compare")(compare_cmd)
app.command("sample")(sample_cmd)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"attnlab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of a failure instead of one line."),
) -> None:
    """attnlab: make the claims of four attention posts executable, and ask them of your own mixers."""
    if debug:
        import os

        from ._common import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"


def _summary(doc: str | None) -> str:
    """A docstring's first sentence as plain text: reStructuredText roles and literals unwrapped."""
    import re

    first = " ".join((doc or "").strip().split("\n\n")[0].split())
    first = re.sub(r":\w+:`~?([^`]+)`", r"\1", first)  # :func:`x` → x
    return first.replace("``", "").rstrip(":")


@app.command("mixers")
def list_mixers() -> None:
    """List the registered mixers and their options."""
    import inspect

    from rich.console import Console

    from ..mixers import MIXERS

    t = table("name", "summary", "options (besides short_conv, conv_size, head_dim)")
    for name in sorted(MIXERS):
        cls = MIXERS[name]
        opts = []
        for klass in cls.__mro__:
            if klass.__dict__.get("__init__") is None or klass.__module__.startswith(("torch", "builtins", "abc")):
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind == p.KEYWORD_ONLY and p.name not in ("short_conv", "conv_size", "head_dim", "conv_activation"):
                    opt = f"{p.name}={p.default!r}"
                    if opt not in opts:
                        opts.append(opt)
        t.add_row(escape(name), escape(_summary(cls.__doc__)), escape(", ".join(opts)))
    Console(width=160).print(t)
