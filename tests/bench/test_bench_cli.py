"""The benchmark command runs and keeps its JSON contract (timings are not asserted: a benchmark, not a test)."""

import json

import torch
from typer.testing import CliRunner

from attnlab.bench.ops import flops, make_call
from attnlab.cli import app


def test_bench_ops_json_schema(tmp_path):
    md = tmp_path / "b.md"
    r = CliRunner().invoke(app, ["bench", "ops", "--op", "delta_rule", "--T", "64,100", "--reps", "1", "--json",
                                 "--markdown", str(md)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["matmul_gflops"] > 0
    forms = {(row["form"], row["T"]) for row in data["rows"]}
    assert forms == {(f, t) for f in ("chunk", "pytorch_chunk", "recurrent", "fla_naive_chunk") for t in (64, 100)}
    for row in data["rows"]:
        assert set(row) == {"op", "form", "T", "median_s", "gflops", "peak_mem_mb"}
        assert row["median_s"] > 0 and row["gflops"] > 0
    assert "| delta_rule | 100 | chunk |" in md.read_text()
    assert data["setting"]["delta_chunk"].startswith(("native", "pytorch"))
    from attnlab.bench.ops import delta_chunk_engine, make_call

    assert delta_chunk_engine("cpu") == data["setting"]["delta_chunk"]
    # with --backward the PyTorch chunk form keeps its row beside the default (native where it builds)
    assert make_call("delta_rule", "pytorch_chunk", 64, backward=True) is not None


def test_bench_errors():
    r = CliRunner().invoke(app, ["bench", "ops", "--op", "mamba"])
    assert r.exit_code == 2 and "unknown op 'mamba'" in r.output
    r = CliRunner().invoke(app, ["bench", "ops", "--T", "x"])
    assert r.exit_code == 2 and "--T must be" in r.output


def test_timed_calls_compute_the_same_thing():
    """The three timed forms agree, so the benchmark compares equal work."""
    import torch

    forms = ("chunk", "pytorch_chunk", "recurrent", "fla_naive_chunk")
    outs = {f: make_call("delta_rule", f, 128)() for f in forms}
    fla = outs["fla_naive_chunk"].transpose(1, 2)  # fla's naive chunk form is [b, h, t, d]
    assert torch.allclose(outs["chunk"], outs["recurrent"], atol=1e-4)
    assert torch.allclose(outs["pytorch_chunk"], outs["recurrent"], atol=1e-4)
    for op in ("linear_attention", "simple_gla"):  # a native and a PyTorch forward, one PyTorch backward
        ref = make_call(op, "recurrent", 128)()
        assert torch.allclose(make_call(op, "chunk", 128)(), ref, atol=1e-4)
        assert torch.allclose(make_call(op, "pytorch_chunk", 128)(), ref, atol=1e-4)
        assert make_call(op, "pytorch_chunk", 128, backward=True) is None
    assert make_call("mesa_net", "pytorch_chunk", 128) is None  # one engine: the chunk row is PyTorch's
    assert torch.allclose(outs["chunk"], fla, atol=1e-4)
    assert flops("delta_rule", "chunk", 4096) == 4 * 64 * (8 * 64 * 64 * 64 + 6 * 64 * 64 * 64)


def test_bench_device_errors_and_separate_tables(tmp_path):
    import torch

    from attnlab.cli.bench import markers

    r = CliRunner().invoke(app, ["bench", "ops", "--device", "tpu", "--T", "64"])
    assert r.exit_code == 2 and "device must be 'cpu' or 'cuda'" in r.output
    if not torch.cuda.is_available():
        r = CliRunner().invoke(app, ["bench", "ops", "--device", "cuda", "--T", "64"])
        assert r.exit_code == 2 and "sees no CUDA device" in r.output
    assert markers("cpu") != markers("cuda")  # a GPU run rewrites its own table, never the CPU one
    md = tmp_path / "b.md"
    md.write_text(f"# B\n\n{markers('cuda')[0]}\nGPU TABLE\n{markers('cuda')[1]}\n")
    r = CliRunner().invoke(app, ["bench", "ops", "--op", "linear_attention", "--T", "64", "--reps", "1",
                                 "--markdown", str(md)])
    assert r.exit_code == 0, r.output
    text = md.read_text()
    assert "GPU TABLE" in text and "| linear_attention | 64 | chunk |" in text


def test_mesa_forms_compute_the_same_thing():
    """MesaNet's exact and CG forms agree with their recurrences; fla's naive CG differs only by its ε = 1e-5."""
    from attnlab.bench.ops import MESA_CG_STEPS

    exact = {f: make_call("mesa_net", f, 100)() for f in ("chunk", "recurrent")}
    assert torch.allclose(exact["chunk"], exact["recurrent"], atol=1e-4)
    assert make_call("mesa_net", "fla_naive_chunk", 100) is None  # fla has no exact chunk form
    cg = {f: make_call("mesa_net_cg", f, 100)() for f in ("chunk", "recurrent", "fla_naive_chunk")}
    assert torch.allclose(cg["chunk"], cg["recurrent"], atol=1e-4)
    assert torch.allclose(cg["chunk"], cg["fla_naive_chunk"][:, :100], atol=1e-2)
    n, C, d, s = 64, 64, 64, MESA_CG_STEPS
    assert flops("mesa_net_cg", "chunk", 4096) == 4 * n * (4 * C * d * d + (s + 1) * (2 * C * d * d + 4 * C * C * d))
