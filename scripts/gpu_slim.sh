#!/usr/bin/env bash
# Put this checkout on a temporary branch that holds only what a training host needs (the package, the build
# files, each saved run's result.json), with FER-2013, its FER+ votes and the commit in the ignored .device-data/.
# The GPU host then runs `bash scripts/gpu_run.sh` in a copy of it; `scripts/gpu_slim.sh --restore` comes back.
# Usage: scripts/gpu_slim.sh [PATH/TO/fer2013.zip]   |   scripts/gpu_slim.sh --restore
set -euo pipefail
cd "$(dirname "$0")/.."
BRANCH=gpu-slim
PY=$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )
if [ "${1:-}" = "--restore" ]; then
    git switch -q "$(cat .device-data/BASE_BRANCH)"
    git branch -q -D "$BRANCH"
    echo "back on $(git rev-parse --abbrev-ref HEAD); .device-data/ kept (ignored)"
    exit 0
fi
if [ -n "$(git status --porcelain)" ]; then
    echo "gpu_slim: the checkout has uncommitted or untracked files; commit or stash them first" >&2
    exit 2
fi
DATA=${1:-${FER2013_PATH:-data/fer2013.zip}}
[ -f "$DATA" ] || { echo "gpu_slim: no data file at $DATA (give its path)" >&2; exit 2; }
mkdir -p .device-data
cp "$DATA" .device-data/fer2013.zip
VOTES=${FERPLUS_PATH:-$(dirname "$DATA")/ferplus_votes.csv}
if [ -f "$VOTES" ]; then cp "$VOTES" .device-data/ferplus_votes.csv; else echo "no FER+ votes at $VOTES: no crowd runs"; fi
git rev-parse HEAD > .device-data/COMMIT
git rev-parse --abbrev-ref HEAD > .device-data/BASE_BRANCH
"$PY" -m fer_helpers.train.bundle heavy > .device-data/heavy.list
git switch -q -c "$BRANCH"
xargs -0 git rm -q -- < .device-data/heavy.list
git commit -q -m "Slim tree for a training host"
"$PY" -m fer_helpers.train.bundle size .device-data/fer2013.zip .device-data/ferplus_votes.csv
echo "on branch $BRANCH; send it with .device-data carried, run: bash scripts/gpu_run.sh [BUDGET_MINUTES] [JOBS]"
