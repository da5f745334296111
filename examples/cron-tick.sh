#!/usr/bin/env bash
# What the lines in crontab.txt do, runnable: every tick plans the night's jobs again (their
# keys make that create nothing new) and runs a share of ten tasks.
set -euo pipefail
export CLAUDE_CODE_TASK_LIST_ID="${CLAUDE_CODE_TASK_LIST_ID:-nightly-$$}"
plan() { seq 1 25 | sed 's/.*/{"key":"job &","subject":"nightly job &"}/' | task-create --from - >/dev/null; }
plan
tick=0
while [ "$(task-list -s ready --count --format json | sed 's/.*"pending":\([0-9]*\).*/\1/')" -gt 0 ]; do
  tick=$((tick + 1))
  plan
  worker-spawn -j 2 --max-tasks 10 --no-progress -- sh -c 'echo done' 2>/dev/null
  echo "tick $tick: $(task-list -s completed --format ids | wc -l) of $(task-list --format ids | wc -l) completed"
done
