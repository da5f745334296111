#!/bin/sh
# One Claude Code worker for worker-spawn: the first attempt starts from the task's
# description; a retry resumes the last attempt's session (TASK_SESSION, which
# worker-spawn keeps from the result envelope) and hands it what the failed check said
# (TASK_FEEDBACK). Both print the result envelope (--output-format json), so worker-spawn
# stores the answer as the result, fails an attempt the agent says failed, and keeps the
# session and the cost.
#
#   worker-spawn -j 4 --max-cost 5 --verify 'cargo test' -- examples/claude/worker.sh
#
# CLAUDE_CODE names the CLI (default: claude). CLAUDE_WORKER_FLAGS are passed to every
# call (default: --permission-mode acceptEdits, so that a worker may edit files; add
# --allowedTools 'Bash(cargo test:*)' and the like for the commands it must run).
set -eu
claude=${CLAUDE_CODE:-claude}
flags=${CLAUDE_WORKER_FLAGS:---permission-mode acceptEdits}
if [ -n "${TASK_SESSION:-}" ]; then
  feedback=${TASK_FEEDBACK:-"The previous attempt did not succeed. Finish the task."}
  # shellcheck disable=SC2086 # the flags are words
  exec "$claude" -p --resume "$TASK_SESSION" --output-format json $flags "$feedback"
fi
# shellcheck disable=SC2086
exec "$claude" -p --output-format json $flags "$TASK_DESCRIPTION"
