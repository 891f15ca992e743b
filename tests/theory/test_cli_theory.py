import json

from typer.testing import CliRunner

from attnlab.cli import app

runner = CliRunner()


def _json(*args):
    res = runner.invoke(app, ["theory", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_json_fields():
    s = _json("sparsity", "--kernel", "relu2", "--beta", "-0.5", "--gamma", "1.5", "--samples", "20000")
    assert set(s) == {"formula", "quadrature", "monte_carlo", "monte_carlo_stderr"}
    assert abs(s["formula"] - s["quadrature"]) < 1e-8
    assert set(_json("decay-sparsity", "--lam", "0.9", "--n", "50")) == {"formula", "exact"}
    assert set(_json("entropy-floor", "--tau", "1")) == {"gap", "t_star"}
    f = _json("entropy-floor", "--tau", "1", "--n", "100")
    assert set(f) == {"gap", "t_star", "floor", "floor_exact"}
    assert abs(f["gap"] - 0.4744746) < 1e-7
    assert set(_json("tau-for-floor", "--floor", "0.5", "--n", "1000")) == {"tau"}


def test_bad_arguments_one_line():
    for args, name in [
        (["sparsity", "--gamma", "0"], "gamma"),
        (["decay-sparsity", "--lam", "1.5", "--n", "3"], "lam"),
        (["decay-sparsity", "--lam", "0.5", "--n", "0"], "n"),
        (["entropy-floor", "--tau", "-1"], "tau"),
    ]:
        res = runner.invoke(app, ["theory", *args])
        assert res.exit_code == 2
        assert res.stderr.startswith(f"error: {name} ") and res.stderr.count("\n") == 1, res.stderr


def test_figures(tmp_path):
    from attnlab.theory.figures import fig_decay_sparsity, fig_entropy_floor

    for fn in (fig_decay_sparsity, fig_entropy_floor):
        p = fn(tmp_path)
        assert p.stat().st_size > 10_000 and p.read_bytes()[:4] == b"\x89PNG"


def test_version_and_help():
    from typer.testing import CliRunner

    import attnlab
    from attnlab.cli import app

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"attnlab {attnlab.__version__}"
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("reproduce", "train", "sweep", "analyze", "suite", "mixers", "theory", "bench"):
        assert cmd in r.output
