#!/usr/bin/env bash
# N of M: ask five reviewers, go ahead as soon as three have approved.
set -euo pipefail
export CLAUDE_CODE_TASK_LIST_ID="${CLAUDE_CODE_TASK_LIST_ID:-threshold-$$}"

ids=$(for r in 1 2 3 4 5; do task-create "Approval from reviewer $r"; done)

# Reviewers 4 and 5 are slow; the wait does not need them.
worker-spawn -j 5 --no-progress -- sh -c 'case $TASK_ID in 4|5) sleep 2;; esac; echo approved' &
pool=$!

if echo "$ids" | task-wait - --count 3 --format ids >/dev/null; then
  echo "3 of 5 approved: going ahead"
fi
task-list -s completed --count --format json
kill -TERM "$pool" 2>/dev/null || true   # the stragglers are not needed
wait "$pool" || true                     # 143: stopped, their tasks back to pending
