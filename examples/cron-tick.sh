#!/usr/bin/env bash
# What the line in crontab.txt does on each tick, runnable: a share of ten tasks per tick.
set -euo pipefail
export CLAUDE_CODE_TASK_LIST_ID="${CLAUDE_CODE_TASK_LIST_ID:-nightly-$$}"
seq 1 25 | sed 's/.*/{"subject":"nightly job &"}/' | task-create --from - >/dev/null
tick=0
while [ "$(task-list -s ready --count --format json | sed 's/.*"pending":\([0-9]*\).*/\1/')" -gt 0 ]; do
  tick=$((tick + 1))
  worker-spawn -j 2 --max-tasks 10 --no-progress -- sh -c 'echo done' 2>/dev/null
  echo "tick $tick: $(task-list -s completed --format ids | wc -l) completed"
done
