#!/usr/bin/env bash
# Fail fast: stop at the first failure and report it; then retry the failed ones.
set -euo pipefail
export CLAUDE_CODE_TASK_LIST_ID="${CLAUDE_CODE_TASK_LIST_ID:-fail-fast-$$}"

for step in fetch compile package upload; do task-create "$step" >/dev/null; done
marker=$(mktemp)   # "compile" fails the first time only

# -j 1 runs them in order; --fail-fast stops claiming after the first failure.
if ! worker-spawn -j 1 --fail-fast --no-progress -- \
     sh -c 'if [ "$TASK_SUBJECT" = compile ] && [ ! -s "$1" ]; then echo once > "$1"; echo "compiler crashed" >&2; exit 2; fi; echo ok' sh "$marker"; then
  echo "a step failed:"
  task-list -s failed --format md
fi
task-wait --fail-fast --timeout 1s >/dev/null 2>&1 || echo "task-wait --fail-fast: exit $?"

# Retry: failed tasks back to pending, run the rest.
task-list -s failed --format ids | task-update - -s pending
worker-spawn -j 2 --no-progress -- sh -c 'echo ok'
task-wait --format text
rm -f "$marker"
