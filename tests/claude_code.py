#!/usr/bin/env python3
"""Plays Claude Code's part in the task-sync tests: reads and writes one list's task
folder exactly as Claude Code's task tools (v2.1) do.

- A task is `<id>.json`, `JSON.stringify(task, null, 2)`: id (a string), subject,
  description, activeForm (optional), status, owner (optional), blocks, blockedBy,
  metadata (optional).
- Creating takes the list's lock (proper-lockfile: mkdir `.lock.lock` beside `.lock`,
  stale after 10 s) and picks id = max(file ids, `.highwatermark`) + 1.
- Updates and claims rewrite the file in place (truncate, then write; no rename), with
  the claim checked outside the lock.
- Clearing (what Claude Code does 5 s after every task is completed) writes the
  high-water mark and deletes every task file, under the lock.

Usage: claude_code.py DIR COMMAND [ARGS]
  create SUBJECT [--blocked-by ID]... [--description TEXT]   prints the new id
  update ID FIELD=VALUE...        (VALUE parsed as JSON when it parses)
  claim ID OWNER                  exit 1 when it is not pending and unowned
  delete ID
  clear
  half ID                         leave ID.json half-written (a write in progress)
  stale-lock                      leave a lock whose holder died a minute ago
  check                           every task file parses as Claude Code reads it; prints
                                  how many there are
  creator N PREFIX                create N tasks PREFIX-1..N, claim every third (a busy
                                  session)
"""

import json
import os
import sys
import time

STALE = 10.0


def path(d, i):
    return os.path.join(d, f"{i}.json")


def task_ids(d):
    out = []
    for name in os.listdir(d):
        stem = name[:-5] if name.endswith(".json") else ""
        if stem.isdigit() and not stem.startswith("0"):
            out.append(int(stem))
    return sorted(out)


def lock(d):
    open(os.path.join(d, ".lock"), "a").close()
    lk = os.path.join(d, ".lock.lock")
    nap = 0.005
    while True:
        try:
            os.mkdir(lk)
            return lk
        except FileExistsError:
            try:
                if time.time() - os.stat(lk).st_mtime > STALE:
                    os.rmdir(lk)
                    continue
            except FileNotFoundError:
                continue
            time.sleep(nap)
            nap = min(nap * 2, 0.1)


def unlock(lk):
    os.rmdir(lk)


def write_in_place(d, task):
    # Claude Code writes with fs.writeFile: truncate, then write. No rename.
    with open(path(d, task["id"]), "w") as f:
        f.write(json.dumps(task, indent=2, ensure_ascii=False))


def read(d, i):
    with open(path(d, i)) as f:
        return json.load(f)


def highwatermark(d):
    try:
        with open(os.path.join(d, ".highwatermark")) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return 0


def create(d, subject, blocked_by=(), description=""):
    lk = lock(d)
    try:
        ids = task_ids(d)
        new = max([highwatermark(d)] + ids) + 1
        task = {
            "id": str(new),
            "subject": subject,
            "description": description,
            "status": "pending",
            "blocks": [],
            "blockedBy": [str(b) for b in blocked_by],
        }
        write_in_place(d, task)
        for b in blocked_by:
            other = read(d, b)
            other["blocks"].append(str(new))
            write_in_place(d, other)
    finally:
        unlock(lk)
    return new


def update(d, i, pairs):
    task = read(d, i)
    for p in pairs:
        k, v = p.split("=", 1)
        try:
            task[k] = json.loads(v)
        except ValueError:
            task[k] = v
    write_in_place(d, task)


def claim(d, i, owner):
    task = read(d, i)
    if task["status"] != "pending" or task.get("owner"):
        return False
    task["status"] = "in_progress"
    task["owner"] = owner
    write_in_place(d, task)
    return True


def clear(d):
    lk = lock(d)
    try:
        ids = task_ids(d)
        if ids:
            with open(os.path.join(d, ".highwatermark"), "w") as f:
                f.write(str(max(ids + [highwatermark(d)])))
        for i in ids:
            os.remove(path(d, i))
    finally:
        unlock(lk)


def check(d):
    n = 0
    for i in task_ids(d):
        t = read(d, i)
        assert t["id"] == str(i), f"{i}.json has id {t['id']!r}"
        for k in ("subject", "description"):
            assert isinstance(t[k], str), f"{i}.json: {k}"
        assert t["status"] in ("pending", "in_progress", "completed"), f"{i}.json: {t['status']}"
        for k in ("blocks", "blockedBy"):
            assert all(isinstance(x, str) for x in t[k]), f"{i}.json: {k}"
        for k in ("activeForm", "owner"):
            assert k not in t or isinstance(t[k], str), f"{i}.json: {k} is {t[k]!r}"
        assert "metadata" not in t or isinstance(t["metadata"], dict), f"{i}.json: metadata"
        n += 1
    return n


def main():
    d, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(d, exist_ok=True)
    if cmd == "create":
        subject, blocked, desc = args[0], [], ""
        rest = args[1:]
        while rest:
            flag, value, rest = rest[0], rest[1], rest[2:]
            if flag == "--blocked-by":
                blocked.append(int(value))
            elif flag == "--description":
                desc = value
        print(create(d, subject, blocked, desc))
    elif cmd == "update":
        update(d, int(args[0]), args[1:])
    elif cmd == "claim":
        sys.exit(0 if claim(d, int(args[0]), args[1]) else 1)
    elif cmd == "delete":
        os.remove(path(d, int(args[0])))
    elif cmd == "clear":
        clear(d)
    elif cmd == "half":
        with open(path(d, int(args[0]))) as f:
            text = f.read()
        with open(path(d, int(args[0])), "w") as f:
            f.write(text[: len(text) // 2])
    elif cmd == "stale-lock":
        lk = os.path.join(d, ".lock.lock")
        os.mkdir(lk)
        old = time.time() - 60
        os.utime(lk, (old, old))
    elif cmd == "check":
        print(check(d))
    elif cmd == "creator":
        n, prefix = int(args[0]), args[1]
        for k in range(1, n + 1):
            i = create(d, f"{prefix}-{k}")
            if k % 3 == 0:
                claim(d, i, prefix)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
