#!/usr/bin/env bash
# The one GPU check (see bench/gpu_check.py): figures in $OUT/gpu_check.json, log in $OUT/gpu_check.log.
#   bash bench/gpu_check.sh                 # on the GPU box; run it with a 10-minute command limit
#   PYTHON=.venv/bin/python bash bench/gpu_check.sh --cpu-smoke    # here, on the CPU
# The whole check stops after GPU_CHECK_LIMIT seconds (default 450); sections that would not fit in the
# Python budget (30 s less) are skipped with a reason, and what finished is already in the JSON.
set -u
cd "$(dirname "$0")/.." || exit 2
: "${OUT:=$(mktemp -d -t gpu_check.XXXXXX)}"
export OUT
PY=${PYTHON:-python3}
LIMIT=${GPU_CHECK_LIMIT:-450}
# A GPU box without safetensors (the model package needs it) can install a carried wheel, offline.
if ! "$PY" -c "import safetensors" 2>/dev/null && [ -n "${LMFORGE_WHEELS:-}" ]; then
  "$PY" -m pip install --no-index --find-links "$LMFORGE_WHEELS" --target "${TMPDIR:-/tmp}/gpu_check_site" safetensors >&2 \
    && export PYTHONPATH="${TMPDIR:-/tmp}/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
fi
timeout -k 10 "$LIMIT" "$PY" bench/gpu_check.py --out "$OUT" --budget "$((LIMIT - 30))" "$@"
rc=$?
[ "$rc" -eq 124 ] && echo "gpu_check: stopped at the ${LIMIT}s limit; partial figures in $OUT/gpu_check.json" >&2
exit "$rc"
