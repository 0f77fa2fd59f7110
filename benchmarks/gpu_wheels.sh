#!/usr/bin/env bash
# The packages benchmarks.gpu_check needs that the GPU machine's image lacks or may hold too old (pydantic and its
# four dependencies, structlog), as wheels in .whl/, at constraints.txt's versions, for that machine's Python.
#
#   bash benchmarks/gpu_wheels.sh            # cp312 x86-64: the GPU machine's python3 (3.12)
#   PY_VERSION=3.11 bash benchmarks/gpu_wheels.sh   # a rehearsal here
#
# Then, on the GPU machine (the device tool carries .whl, which .git/info/exclude keeps out of git):
#   bash benchmarks/gpu_session.sh     (installs them into /tmp/site, runs the check, copies the record to $OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${PY_VERSION:-3.12}
PACKAGES=(pydantic pydantic_core annotated-types typing-inspection typing_extensions structlog)

pinned() {  # NAME==VERSION from constraints.txt (names compared case- and -/_-insensitively)
    local want=${1//_/-}
    grep -i -E "^${want//-/[-_]}==" constraints.txt | head -1
}

rm -rf .whl && mkdir .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info && echo '/.whl/' >> .git/info/exclude; }
for name in "${PACKAGES[@]}"; do
    spec=$(pinned "$name" || true)
    [ -n "$spec" ] || { echo "gpu_wheels: $name is not pinned in constraints.txt" >&2; exit 2; }
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
done
ls .whl
