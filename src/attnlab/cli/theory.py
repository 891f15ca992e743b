"""``attnlab theory …``: the closed forms of posts 9889 and 9593, each checked independently."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import emit, one_line_errors

app = typer.Typer(help="Closed forms of the posts, with quadrature and Monte Carlo checks.", no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})


@app.command()
@one_line_errors
def sparsity(
    kernel: str = typer.Option("exp", help="exp | relu2 | identity"),
    beta: float = typer.Option(0.0, help="β = q·μ"),
    gamma: float = typer.Option(1.0, help="γ = σ‖q‖ (> 0)"),
    samples: int = typer.Option(200_000, help="Monte Carlo samples"),
    seed: int = typer.Option(0),
    json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """ℓ1/ℓ2 sparsity S of f(q·k) for k ~ N(μ, σ²I) (claims C2–C4): formula, quadrature, Monte Carlo."""
    from ..theory.sparsity import sparsity_three_ways

    emit(sparsity_three_ways(kernel, beta, gamma, samples=samples, seed=seed), json, f"S, kernel={kernel}")


@app.command("decay-sparsity")
@one_line_errors
def decay_sparsity(
    lam: float = typer.Option(..., help="decay λ in (0, 1]"),
    n: int = typer.Option(..., help="sequence length n ≥ 1"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Sparsity of a linear RNN's decay weights (claim C6): formula and direct sum."""
    from ..theory.sparsity import decay_sparsity, decay_sparsity_exact

    emit({"formula": decay_sparsity(lam, n), "exact": decay_sparsity_exact(lam, n)}, json)


@app.command("entropy-floor")
@one_line_errors
def entropy_floor(
    tau: float = typer.Option(..., help="temperature τ > 0"),
    n: int = typer.Option(None, help="sequence length (adds floor and floor_exact)"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """The minimum entropy of softmax over scores in [−1/τ, 1/τ] (claim I2)."""
    from ..theory.entropy import entropy_floor as floor

    emit(floor(tau, n), json)


@app.command("tau-for-floor")
@one_line_errors
def tau_for_floor(
    floor: float = typer.Option(..., help="target entropy floor in nats"),
    n: int = typer.Option(..., help="sequence length n ≥ 2"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """The temperature τ whose exact entropy floor at length n is FLOOR (claim I2)."""
    from ..theory.entropy import tau_for_floor as solve

    emit({"tau": solve(floor, n)}, json)


@app.command()
@one_line_errors
def figures(out: Path = typer.Option(Path("figures"), help="output folder")) -> None:
    """Draw the posts' figures (sparsity, entropy floor, decay sparsity, noise error) as PNGs."""
    from rich.progress import track

    from ..theory.figures import FIGURES

    out.mkdir(parents=True, exist_ok=True)
    for name in track(list(FIGURES), description="figures"):
        typer.echo(str(FIGURES[name](out)))
