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
# CLAUDE_CODE names the CLI (default: claude). CLAUDE_WORKER_FLAGS are added to every
# call, quoted as in a shell (default: --permission-mode acceptEdits, so that a worker may
# edit files); e.g. CLAUDE_WORKER_FLAGS="--permission-mode acceptEdits --allowedTools
# 'Bash(cargo test:*)'". The prompt comes first: options such as --allowedTools take every
# word after them.
set -eu
claude=${CLAUDE_CODE:-claude}
eval "set -- ${CLAUDE_WORKER_FLAGS---permission-mode acceptEdits}"
if [ -n "${TASK_SESSION:-}" ]; then
  feedback=${TASK_FEEDBACK:-"The previous attempt did not succeed. Finish the task."}
  exec "$claude" -p "$feedback" --resume "$TASK_SESSION" --output-format json "$@"
fi
exec "$claude" -p "$TASK_DESCRIPTION" --output-format json "$@"
