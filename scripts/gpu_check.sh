#!/usr/bin/env bash
# Checks attnlab's GPU path on a CUDA machine and writes GPU benchmark tables.
# Usage: scripts/gpu_check.sh OUTDIR   (wheels for missing packages may lie in .whl/)
set -uo pipefail
out=${1:-gpu_out}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/env.txt"
python3 -c "import torch, triton, fla; print('torch', torch.__version__, 'triton', triton.__version__, 'fla', fla.__version__)" | tee -a "$out/env.txt"
python3 -m pytest -q -p no:cacheprovider tests/ops/test_fla_backend.py 2>&1 | tee "$out/pytest_gpu.txt" | tail -15
cp docs/benchmarks.md "$out/benchmarks.md"
python3 -m attnlab.cli bench ops --device cuda --op delta_rule,gated_delta_rule --T 1024,4096,16384 \
  --markdown "$out/benchmarks.md" --json > "$out/bench_cuda.json" || echo "bench forward failed"
if [ -z "${SKIP_BACKWARD:-}" ]; then
  python3 -m attnlab.cli bench ops --device cuda --op delta_rule,gated_delta_rule --T 4096 --backward --json \
    > "$out/bench_cuda_bwd.json" || echo "bench backward failed"
fi
sed -n '/bench-ops-cuda:start/,/bench-ops-cuda:end/p' "$out/benchmarks.md"
