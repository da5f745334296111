#!/usr/bin/env bash
# A coordinator loop in a dozen lines: plan tasks with dependencies, run them on a
# pool of workers, wait for all, print the aggregated report.
#
# The "agent" is a stand-in shell command, so this runs anywhere; swap in
#   worker-spawn -j 3 -- "${CLAUDE_CODE:-claude}" -p '{description}'
# to run real agents. Uses the default store unless TASK_DB is set, and a fresh list.
set -euo pipefail
export CLAUDE_CODE_TASK_LIST_ID="${CLAUDE_CODE_TASK_LIST_ID:-demo-$(date +%s)-$$}"

# 1. Plan: two independent reviews, a build that needs both, a release after the build.
task-create --from - >/dev/null <<'PLAN'
{"key":"api","subject":"Review the API module","description":"review src/api","metadata":{"agent":"reviewer"}}
{"key":"db","subject":"Review the storage module","description":"review src/db","metadata":{"agent":"reviewer"}}
{"key":"build","subject":"Build","description":"cargo build","blockedBy":["api","db"]}
{"subject":"Release notes","description":"write notes","blockedBy":["build"]}
PLAN
echo "== plan (list $CLAUDE_CODE_TASK_LIST_ID)"
task-list
task-list --waves

# 2. Fan out: three workers, each running the stand-in agent for one task at a time.
worker-spawn -j 3 --no-progress -- sh -c 'echo "$TASK_SUBJECT: done by $TASK_OWNER (attempt $TASK_ATTEMPT)"'

# 3. Join and aggregate: exit 0 only if every task completed.
echo "== report"
task-wait --timeout 60s --format md
