#!/usr/bin/env bash
# On a GPU host, in a copy of the slim tree (scripts/gpu_slim.sh): train what the full profile still lacks,
# most valuable runs first, several at once, inside a budget, and archive every finished run into $OUT.
# Needs python3 with torch, Lightning, scikit-learn, scikit-image, pandas, safetensors and OpenCV; installs
# nothing and imports neither papermill nor pytorch-grad-cam. Usage: bash scripts/gpu_run.sh [BUDGET_MINUTES] [JOBS]
# (COMPILE=1 adds torch.compile to every CNN run: recorded in each run, the experiment unchanged). The defaults,
# 6 minutes and 2 jobs, leave a 10-minute command room for start-up, the preflight and the archive. The host is
# discarded afterwards, so runs keep no per-epoch state; the workers' logs come back as logs.tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-gpu-out}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 FER_STUDY_RESUME=0
trap 'tar czf "$OUT_DIR/logs.tar.gz" -C runs/full logs 2>/dev/null || true' EXIT
FER_STUDY_COMMIT=$(cat .device-data/COMMIT 2>/dev/null || true)
export FER_STUDY_COMMIT
if [ -z "${FERPLUS_PATH:-}" ] && [ -f .device-data/ferplus_votes.csv ]; then
    export FERPLUS_PATH=.device-data/ferplus_votes.csv
fi
python3 -c "import sys, torch, lightning; print('python', sys.version.split()[0], 'torch', torch.__version__,
'lightning', lightning.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
python3 -m fer_helpers train --profile full --data "${FER2013_PATH:-.device-data/fer2013.zip}" \
    --budget-minutes "${1:-6}" --jobs "${2:-2}" --archive "$OUT_DIR" ${COMPILE:+--compile} 2>&1 | tee "$OUT_DIR/train.log"
