#!/usr/bin/env bash
# Workers specialised by metadata: reviewers take review tasks, testers take test
# tasks, and at most one task per agent type runs at once across both pools.
set -euo pipefail
export CLAUDE_CODE_TASK_LIST_ID="${CLAUDE_CODE_TASK_LIST_ID:-specialised-$$}"

for i in 1 2 3; do
  task-create "Review module $i" -m agent=reviewer >/dev/null
  task-create "Test module $i" -m agent=tester >/dev/null
done

worker-spawn -j 2 --owner-prefix reviewer -m agent=reviewer --limit agent=1 --no-progress -- sh -c 'echo "reviewed by $TASK_OWNER"' &
worker-spawn -j 2 --owner-prefix tester -m agent=tester --limit agent=1 --no-progress -- sh -c 'echo "tested by $TASK_OWNER"' &
wait

task-list --format csv --fields id,subject,owner,result
