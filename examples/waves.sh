#!/usr/bin/env bash
# Dependency-aware batches: build, then the tests (in parallel), then deploy.
# Cycles are refused when the plan is created; the workers respect the order.
set -euo pipefail
export CLAUDE_CODE_TASK_LIST_ID="${CLAUDE_CODE_TASK_LIST_ID:-waves-$$}"

task-create --from - >/dev/null <<'PLAN'
[
  {"key": "build", "subject": "Build", "description": "make build"},
  {"key": "unit", "subject": "Unit tests", "description": "make unit", "blockedBy": ["build"]},
  {"key": "e2e", "subject": "End-to-end tests", "description": "make e2e", "blockedBy": ["build"]},
  {"key": "lint", "subject": "Lint", "description": "make lint"},
  {"subject": "Deploy", "description": "make deploy", "blockedBy": ["unit", "e2e", "lint"]}
]
PLAN
task-list --waves

# Each step appends to a log, so the order can be checked afterwards.
log=$(mktemp)
worker-spawn -j 3 --no-progress -- sh -c 'echo "$TASK_SUBJECT" >> "$1"; echo "ran: $2"' sh "$log" '{description}'
task-wait --format text
echo "order:"; cat "$log"; rm -f "$log"
