#!/usr/bin/env bash
# The whole GPU check as one command, run from a source checkout on a GPU machine without network (the one a
# session may be lent: torch there, pydantic and structlog carried as wheels by benchmarks/gpu_wheels.sh):
#
#   here:  bash benchmarks/gpu_wheels.sh
#   there: bash benchmarks/gpu_session.sh [gpu_check arguments]   (carry .whl; about 8 minutes on one H200)
#
# It installs the wheels into /tmp/site (never over the machine's own packages), runs benchmarks.gpu_check
# under a time limit (GPU_CHECK_LIMIT_S, default 540 s: the record is rewritten after every part, so a cut run
# keeps what it measured), then copies every gpu_check record to $OUT (what the device tool brings back), or to
# /tmp/gpu_out without one. Its exit code is the check's.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_out}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "gpu_session: installing the carried wheels failed" >&2; exit 2; }
    export PYTHONPATH=/tmp/site:.
else
    export PYTHONPATH=.
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "gpu_session: no nvidia-smi"
python3 -c "import torch, pydantic, structlog; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    || { echo "gpu_session: torch, pydantic or structlog is missing" >&2; exit 2; }
# --copy-to: every rewrite of the record lands in $out too, so a run the device tool cuts still brings it back
timeout -k 10 "${GPU_CHECK_LIMIT_S:-540}" python3 -m benchmarks.gpu_check --copy-to "$out" "$@"
code=$?
cp benchmarks/results/gpu_check*.json "$out"/ 2>/dev/null
ls -l "$out"
exit $code
