#!/usr/bin/env bash
# Fork–join: review five items in parallel, wait for all, hand back one report.
# The reviewer is a stand-in; use  "${CLAUDE_CODE:-claude}" -p 'Review {subject}'  for a real agent.
set -euo pipefail
export CLAUDE_CODE_TASK_LIST_ID="${CLAUDE_CODE_TASK_LIST_ID:-fork-join-$$}"

ids=$(for pr in 101 102 103 104 105; do
  task-create "Review PR #$pr" -d "Review pull request $pr for bugs" -m agent=reviewer
done)

worker-spawn -j 5 --no-progress -- sh -c 'echo "PR ${TASK_SUBJECT#Review PR #}: looks good"'

echo "$ids" | task-wait - --timeout 5m --format md
