#!/usr/bin/env python3
"""parallel-tasks benchmarks: whole-process costs side by side with their baselines.

Usage: bench/bench.py [--quick] [calls] [profile] [batch] [scale] [wait] [workers] [sync] [scopes] [makespan] [depth] [watch] [pg] [before]
(default: all but before)
`pg` needs a PostgreSQL server: BENCH_PG=postgres://USER:PASSWORD@HOST:PORT (each run
makes and drops a database there; `psql` must be installed); without it, it says so and
skips. `before` measures what the current build costs SQLite users against another
revision (BENCH_BEFORE=REV, default the commit before the PostgreSQL client was linked),
built in a temporary git worktree.
Builds the release binaries first (cargo build --release). `--quick` runs every
benchmark with a few iterations and small inputs: a smoke run (CI runs it so that the
benchmarks cannot rot); its figures mean nothing. Every figure is a median
over many runs, next to its baseline measured in the same run; quote ratios, not
absolute times: these machines are shared and noisy.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_tuple():
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("host: "))


# .cargo/config.toml builds for the host tuple by name, so release binaries land in
# target/<host>/release.
BIN = os.path.join(ROOT, "target", host_tuple(), "release")


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)


def spawn_once(argv, env):
    """Wall time of one fork+exec+wait, with stdout/stderr to /dev/null (posix_spawn:
    the harness adds as little as it can, and the same to every command)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2),
    ]
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    dt = time.perf_counter() - t0
    os.close(devnull)
    return dt, os.waitstatus_to_exitcode(status)


def median_ms(samples):
    return statistics.median(samples) * 1000


def tool(name):
    return os.path.join(BIN, name)


def env_for(db, list_id="bench"):
    env = dict(os.environ)
    env["TASK_DB"] = db
    env["CLAUDE_CODE_TASK_LIST_ID"] = list_id
    return env


def create_lines(path, n, prefix="task"):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"subject": f"{prefix} {i}", "metadata": {"n": i}}) + "\n")


def run(argv, env, **kw):
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True, **kw)


def bench_calls(rounds=300):
    """One call of task-create / task-update --claim / task-list on a 100-task list
    against a spawn of /bin/true (target: each at most about 2x)."""
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "tasks.db")
        env = env_for(db)
        lines = os.path.join(d, "100.jsonl")
        create_lines(lines, 100)
        run([tool("task-create"), "--from", lines], env)
        true_s, help_s, create_s, claim_s, list_s = [], [], [], [], []
        for i in range(rounds):
            # Interleaved, so that a noisy moment hits every command alike.
            true_s.append(spawn_once(["/bin/true"], env)[0])
            help_s.append(spawn_once([tool("task-list"), "--help"], env)[0])
            create_s.append(spawn_once([tool("task-create"), f"extra {i}"], env)[0])
            dt, code = spawn_once([tool("task-update"), "--claim", "--owner", "bench"], env)
            assert code == 0, "claim found nothing"
            claim_s.append(dt)
            list_s.append(spawn_once([tool("task-list"), "--limit", "100"], env)[0])
            # Untimed: give the claimed task back and drop the extra one, so the list stays at 100.
            run([tool("task-update"), str(100 + i + 1), "--delete"], env)
            ids = run([tool("task-list"), "-s", "in_progress", "--format", "ids"], env).stdout.split()
            run([tool("task-update"), "--release", *ids], env)
        base = median_ms(true_s)
        print(f"## whole-process call on a 100-task list ({rounds} runs each, median)")
        print(f"{'command':<28} {'median ms':>10} {'x /bin/true':>12}")
        for name, s in [("/bin/true", true_s), ("task-list --help (no store)", help_s),
                        ("task-create SUBJECT", create_s),
                        ("task-update --claim", claim_s), ("task-list", list_s)]:
            print(f"{name:<28} {median_ms(s):>10.3f} {median_ms(s) / base:>12.2f}")
        print()


def bench_batch(n=100_000, rounds=3):
    """task-create --from on 100 000 JSON lines (target: well under 1 s)."""
    with tempfile.TemporaryDirectory() as d:
        lines = os.path.join(d, "batch.jsonl")
        create_lines(lines, n)
        times = []
        for r in range(rounds):
            env = env_for(os.path.join(d, f"tasks{r}.db"))
            t0 = time.perf_counter()
            run([tool("task-create"), "--from", lines, "--format", "ids"], env)
            times.append(time.perf_counter() - t0)
        print(f"## task-create --from, {n} JSON lines ({rounds} runs, fresh store each)")
        print(f"median {statistics.median(times):.3f} s  (min {min(times):.3f} s, max {max(times):.3f} s)")
        print()


def claim_cost(db_dir, n, rounds):
    db = os.path.join(db_dir, f"scale{n}.db")
    env = env_for(db)
    lines = os.path.join(db_dir, f"scale{n}.jsonl")
    create_lines(lines, n)
    subprocess.run([tool("task-create"), "--from", lines], env=env, check=True, stdout=subprocess.DEVNULL)
    os.remove(lines)
    samples = []
    for i in range(rounds):
        dt, code = spawn_once([tool("task-update"), "--claim", "--owner", "bench"], env)
        assert code == 0
        samples.append(dt)
        # Untimed: complete it, so that the next claim walks past one more finished task.
        run([tool("task-update"), str(i + 1), "-s", "completed"], env)
    return median_ms(samples)


def bench_scale(small=1_000, large=1_000_000, rounds=200):
    """Claim cost on a list of 1 000 000 tasks against one of 1 000 (target: within 1.5x)."""
    with tempfile.TemporaryDirectory() as d:
        a = claim_cost(d, small, rounds)
        b = claim_cost(d, large, rounds)
        print(f"## task-update --claim, whole process, median of {rounds}")
        print(f"{small:>9} tasks: {a:.3f} ms")
        print(f"{large:>9} tasks: {b:.3f} ms   ratio {b / a:.2f}")
        print()


def wake_latencies(env, rounds, idle):
    lat = []
    for _ in range(rounds):
        tid = run([tool("task-create"), "wake me"], env).stdout.strip()
        w = subprocess.Popen([tool("task-wait"), tid], env=env, stdout=subprocess.DEVNULL)
        time.sleep(idle)  # let it reach its idle loop
        run([tool("task-update"), tid, "-s", "completed"], env)
        t0 = time.perf_counter()
        w.wait()
        lat.append(time.perf_counter() - t0)
    return lat


def bench_wait(rounds=100, idle_cpu=10.0):
    """Wake-up latency of task-wait (from the satisfying task-update returning to
    task-wait exiting; target: median <= 10 ms) and CPU of a task-wait idle for 10 s
    (target: under 1 % of a core)."""
    with tempfile.TemporaryDirectory() as d:
        env = env_for(os.path.join(d, "tasks.db"))
        floor = []
        tid = run([tool("task-create"), "done"], env).stdout.strip()
        run([tool("task-update"), tid, "-s", "completed"], env)
        for _ in range(rounds):
            floor.append(spawn_once([tool("task-wait"), tid], env)[0])
        print(f"## task-wait")
        print(f"a whole task-wait that need not wait: median {median_ms(floor):.2f} ms")
        for idle, n in [(0.05, rounds), (2.0, min(rounds, 10))]:
            lat = wake_latencies(env, n, idle)
            print(f"wake-up latency after {idle:g} s idle ({n} runs): median {median_ms(lat):.2f} ms, "
                  f"max {max(lat) * 1000:.2f} ms")
        tid = run([tool("task-create"), "never"], env).stdout.strip()
        w = subprocess.Popen([tool("task-wait"), tid, "--timeout", f"{idle_cpu}s"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(w.pid, 0)
        cpu = usage.ru_utime + usage.ru_stime
        print(f"idle {idle_cpu:g} s: {cpu * 1000:.0f} ms CPU = {cpu / idle_cpu * 100:.2f} % of a core")
        print()


def pid_gone(pid):
    """The process is gone (a zombie counts as gone: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def wait_file(path, limit=10.0):
    poll_until(lambda: os.path.exists(path) and open(path).read().strip(), limit)
    return open(path).read().strip()


def bench_stop(rounds=20):
    """Stopping and waking (issue 24's promises, measured rather than asserted):
    cancel of a running task -> its command's process gone (target: within 1 s);
    task-update --claim --wait woken by the blocker's completion -> exited with the task
    (target: within 100 ms); a --detach'ed pool of one `true` task, from the call to its
    pid gone, against the same pool in the foreground."""
    with tempfile.TemporaryDirectory() as d:
        env = env_for(os.path.join(d, "tasks.db"))
        cancel, claim, detached, foreground = [], [], [], []
        for i in range(rounds):
            pidf = os.path.join(d, f"cmd{i}.pid")
            tid = run([tool("task-create"), f"long {i}"], env).stdout.strip()
            pool = subprocess.Popen([tool("worker-spawn"), "-j", "1", "--no-progress", "--", "sh", "-c",
                                     f"echo $$ > {pidf}; exec sleep 300"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pid = int(wait_file(pidf))
            run([tool("task-update"), tid, "-s", "cancelled"], env)
            t0 = time.perf_counter()
            poll_until(lambda: pid_gone(pid), 10.0)
            cancel.append(time.perf_counter() - t0)
            pool.wait()

            blocker = run([tool("task-create"), f"blocker {i}"], env).stdout.strip()
            run([tool("task-create"), f"blocked {i}", "-b", blocker], env)
            run([tool("task-update"), "--claim", blocker, "--owner", "other"], env)
            w = subprocess.Popen([tool("task-update"), "--claim", "--wait", "--owner", "w"], env=env,
                                 stdout=subprocess.DEVNULL)
            time.sleep(0.05)  # let it reach its wait
            run([tool("task-update"), blocker, "-s", "completed"], env)
            t0 = time.perf_counter()
            w.wait()
            claim.append(time.perf_counter() - t0)
            subprocess.run(f"{tool('task-list')} -s in_progress --format ids | {tool('task-update')} - -s completed",
                           shell=True, env=env, check=True)

            run([tool("task-create"), f"quick {i}"], env)
            t0 = time.perf_counter()
            out = run([tool("worker-spawn"), "--detach", "-j", "1", "--format", "json", "--", "true"], env).stdout
            pid = json.loads(out)["pid"]
            poll_until(lambda: pid_gone(pid), 10.0)
            detached.append(time.perf_counter() - t0)
            run([tool("task-create"), f"quick fg {i}"], env)
            foreground.append(spawn_once([tool("worker-spawn"), "-j", "1", "--no-progress", "--", "true"], env)[0])
        print("## stopping and waking")
        print(f"cancel of a running task -> its command gone: median {median_ms(cancel):.1f} ms, max {max(cancel) * 1000:.1f} ms")
        print(f"task-update --claim --wait woken by the blocker's completion: median {median_ms(claim):.1f} ms, "
              f"max {max(claim) * 1000:.1f} ms")
        print(f"worker-spawn --detach, one task, call to pid gone: median {median_ms(detached):.1f} ms; "
              f"the same pool in the foreground: {median_ms(foreground):.1f} ms")
        print()


class McpSession:
    """task-mcp over stdio, spoken to line by line as any MCP client does (initialize,
    then tools/call), one server process and so one store connection for the session."""

    def __init__(self, env):
        self.p = subprocess.Popen([tool("task-mcp")], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.n = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "1"}})
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")

    def request(self, method, params):
        self.n += 1
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params}) + "\n")
        answer = json.loads(self.p.stdout.readline())
        assert answer.get("id") == self.n and "result" in answer, answer
        return answer["result"]

    def call(self, tool_name, args):
        r = self.request("tools/call", {"name": tool_name, "arguments": args})
        assert not r.get("isError"), r
        return r["structuredContent"]

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def mcp_against_processes(env, rounds):
    """Median ms of one claim + completion: over one task-mcp session, and through two
    task-update processes (the same pair a shell worker makes)."""
    lines = os.path.join(tempfile.gettempdir(), f"pt-bench-mcp-{os.getpid()}.jsonl")
    create_lines(lines, 2 * rounds)
    run([tool("task-create"), "--from", lines], env)
    os.remove(lines)
    mcp = McpSession(env)
    over_mcp, over_procs = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        task = mcp.call("task_claim", {"owner": "m"})["task"]
        mcp.call("task_update", {"ids": [task["id"]], "status": "completed", "token": task["claimToken"]})
        over_mcp.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        p = run([tool("task-update"), "--claim", "--owner", "p", "--format", "env"], env)
        kv = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
        run([tool("task-update"), kv["TASK_ID"].strip("'"), "-s", "completed",
             "--token", kv["TASK_CLAIM_TOKEN"].strip("'")], env)
        over_procs.append(time.perf_counter() - t0)
    mcp.close()
    return median_ms(over_mcp), median_ms(over_procs)


def bench_mcp(rounds=300):
    """task-mcp: a claim + completion round trip over stdio in one session, median,
    against the same pair through two task-update processes; SQLite, and PostgreSQL
    when BENCH_PG is set."""
    print("## task-mcp")
    with tempfile.TemporaryDirectory() as d:
        m, p = mcp_against_processes(env_for(os.path.join(d, "tasks.db")), rounds)
        print(f"SQLite: claim + complete over task-mcp {m:.2f} ms, through two task-update processes "
              f"{p:.2f} ms ({p / m:.1f}x)")
    base = os.environ.get("BENCH_PG")
    if base:
        with PgDatabase(base, "pt_bench_mcp") as url:
            m, p = mcp_against_processes(env_for(url), rounds)
            print(f"PostgreSQL: claim + complete over task-mcp {m:.2f} ms, through two task-update processes "
                  f"{p:.2f} ms ({p / m:.1f}x)")
    print()


def chromium():
    for b in ("chromium", "chromium-browser"):
        p = shutil.which(b)
        if p:
            return p
    return None


def bench_html(n=10_000, jobs=8, rounds=3):
    """task-list --format html of a finished run of n tasks (layers of 5-30, each after
    the first waiting on 1-3 of the layer before; `worker-spawn -j 8 -- true`): how long
    the page takes to write, its size (target: under 5 MB), and how long a headless
    Chromium takes to load it: its script's `performance.now()` at the end (target: under
    2 s), and the whole `chromium --dump-dom` process."""
    print("## html")
    with tempfile.TemporaryDirectory() as d:
        env = env_for(os.path.join(d, "tasks.db"))
        plan = os.path.join(d, "plan.jsonl")
        with open(plan, "w") as f:
            _, blockers = random_dag(n, 7)
            for i, bs in enumerate(blockers):
                f.write(json.dumps({"key": f"t{i}", "subject": f"Task {i} of the run",
                                    "blockedBy": [f"t{b}" for b in bs]}) + "\n")
        run([tool("task-create"), "--from", plan], env)
        run([tool("worker-spawn"), "-j", str(jobs), "--no-progress", "--", "true"], env)
        page = os.path.join(d, "run.html")
        writes = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            with open(page, "w") as out:
                subprocess.run([tool("task-list"), "--format", "html"], env=env, stdout=out, check=True)
            writes.append(time.perf_counter() - t0)
        size = os.path.getsize(page)
        print(f"{n} tasks: task-list --format html {median_ms(writes):.0f} ms, {size / 1e6:.2f} MB")
        browser = chromium()
        if not browser:
            print("chromium: SKIPPED (apt-get install chromium)\n")
            return
        ready, whole = [], []
        for i in range(rounds):
            t0 = time.perf_counter()
            dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                  f"--user-data-dir={d}/profile{i}", "--dump-dom", f"file://{page}"],
                                 capture_output=True, text=True, check=True).stdout
            whole.append(time.perf_counter() - t0)
            m = re.search(r'data-ready="(\d+)"', dom)
            ready.append(int(m.group(1)) / 1000 if m else float("nan"))
        print(f"chromium: the page's script done at {median_ms(ready):.0f} ms after navigation started; "
              f"the whole chromium --dump-dom {median_ms(whole):.0f} ms\n")


def claude_cli():
    """The real Claude Code CLI: BENCH_CLAUDE, else the one .ci/claude installs."""
    cli = os.environ.get("BENCH_CLAUDE") or os.path.join(ROOT, "target", "claude-code", "node_modules", ".bin", "claude")
    return cli if os.path.exists(cli) else None


def bench_claude(rounds=20):
    """What a real `claude -p` worker costs worker-spawn beyond the model's time: the
    real CLI (.ci/claude installs it; BENCH_CLAUDE names another) against the scripted
    model server of the tests, which answers at once, so what is measured is the CLI's
    own start-up and one round trip. Median of a `claude -p` run by hand against the same
    call made by `worker-spawn -j 1` for each of `rounds` tasks (its time per task)."""
    cli = claude_cli()
    if cli is None:
        print("## claude\nskipped: no Claude Code CLI (run .ci/claude, or set BENCH_CLAUDE)\n")
        return
    with tempfile.TemporaryDirectory() as d:
        scripts = os.path.join(d, "scripts.json")
        with open(scripts, "w") as f:
            json.dump({"hi": [{"text": "done"}]}, f)
        model = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "claude", "model.py"), "serve",
                                  scripts, os.path.join(d, "requests.log")], stdout=subprocess.PIPE, text=True)
        try:
            port = model.stdout.readline().split()[1]
            env = env_for(os.path.join(d, "tasks.db"))
            home = os.path.join(d, "home")
            os.makedirs(home)
            env.update({"HOME": home, "CLAUDE_CONFIG_DIR": os.path.join(home, ".claude"),
                        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": "sk-bench",
                        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
                        "DISABLE_AUTOUPDATER": "1", "NO_PROXY": "127.0.0.1,localhost"})
            call = [cli, "-p", "[script:hi] go", "--output-format", "json"]
            by_hand = [spawn_once(call, env)[0] for _ in range(rounds)]
            for i in range(rounds):
                run([tool("task-create"), f"task {i}", "-d", "[script:hi] go"], env)
            t0 = time.perf_counter()
            run([tool("worker-spawn"), "-j", "1", "--no-progress", "--", cli, "-p", "{description}",
                 "--output-format", "json"], env)
            pooled = (time.perf_counter() - t0) / rounds
            done = run([tool("task-list"), "-s", "completed", "--count", "--format", "json"], env).stdout
            print("## claude")
            print(f"claude -p (real CLI {subprocess.run([cli, '--version'], capture_output=True, text=True).stdout.strip()}, "
                  f"scripted model answering at once) by hand: median {median_ms(by_hand):.0f} ms")
            print(f"the same under worker-spawn -j 1, per task (claim, run, record the envelope): "
                  f"{pooled * 1000:.0f} ms = {pooled / statistics.median(by_hand):.2f}x; "
                  f"completed: {json.loads(done)['completed']} of {rounds}")
            print()
        finally:
            model.kill()


def bench_workers(n=2000, jobs=4, rounds=3):
    """worker-spawn -j 4 -- true over 2 000 tasks against xargs -P 4 -n 1 true and GNU
    parallel -j 4 true on the same 2 000 items (targets: >= 70 % of xargs's throughput,
    >= 3x GNU parallel's)."""
    import shutil
    items = "".join(f"{i}\n" for i in range(n))
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        lines = os.path.join(d, "tasks.jsonl")
        create_lines(lines, n)
        for r in range(rounds):
            env = env_for(os.path.join(d, f"w{r}.db"))
            run([tool("task-create"), "--from", lines], env)
            t0 = time.perf_counter()
            p = subprocess.run([tool("worker-spawn"), "-j", str(jobs), "--no-progress", "--", "true"],
                               env=env, capture_output=True, text=True)
            rows.setdefault("worker-spawn -j 4 -- true", []).append(time.perf_counter() - t0)
            assert p.returncode == 0, p.stderr
            done = run([tool("task-list"), "-s", "completed", "--count", "--format", "json"], env).stdout
            assert json.loads(done)["completed"] == n, done
            t0 = time.perf_counter()
            subprocess.run(["xargs", "-P", str(jobs), "-n", "1", "true"], input=items, text=True, check=True)
            rows.setdefault("xargs -P 4 -n 1 true", []).append(time.perf_counter() - t0)
            if shutil.which("parallel"):
                t0 = time.perf_counter()
                subprocess.run(["parallel", "--will-cite", "-j", str(jobs), "true"], input=items, text=True,
                               check=True, stdout=subprocess.DEVNULL)
                rows.setdefault("parallel -j 4 true", []).append(time.perf_counter() - t0)
    print(f"## {n} no-op tasks, {jobs} at a time (median of {rounds})")
    print(f"{'runner':<28} {'median s':>9} {'tasks/s':>9}")
    med = {k: statistics.median(v) for k, v in rows.items()}
    for k, v in med.items():
        print(f"{k:<28} {v:>9.3f} {n / v:>9.0f}")
    ws, xa = med["worker-spawn -j 4 -- true"], med["xargs -P 4 -n 1 true"]
    print(f"worker-spawn throughput = {xa / ws * 100:.0f} % of xargs", end="")
    if "parallel -j 4 true" in med:
        print(f", {med['parallel -j 4 true'] / ws:.1f}x GNU parallel")
    else:
        print("; GNU parallel not installed (apt-get install parallel)")
    print()


def proc_cpu(pid):
    """CPU seconds (user + system) a running process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def poll_until(cond, limit=10.0):
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > limit:
            raise RuntimeError("timed out")
        time.sleep(0.001)
    return time.perf_counter() - t0


def bench_sync(n=1000, rounds=20, idle_cpu=10.0):
    """task-sync: a first export of a list of N tasks, a pass with nothing to do
    (against task-list reading the same tasks as JSON), how fast --follow carries a
    change each way, and its CPU while idle (target: not noticeable)."""
    with tempfile.TemporaryDirectory() as d:
        env = env_for(os.path.join(d, "tasks.db"))
        env["CLAUDE_CONFIG_DIR"] = os.path.join(d, "claude")
        folder = os.path.join(d, "claude", "tasks", "bench")
        lines = os.path.join(d, "n.jsonl")
        create_lines(lines, n)
        run([tool("task-create"), "--from", lines], env)
        t0 = time.perf_counter()
        run([tool("task-sync")], env)
        first = time.perf_counter() - t0
        true_s, idle_s, list_s = [], [], []
        for _ in range(rounds):
            true_s.append(spawn_once(["/bin/true"], env)[0])
            idle_s.append(spawn_once([tool("task-sync")], env)[0])
            list_s.append(spawn_once([tool("task-list"), "--format", "json"], env)[0])
        print(f"## task-sync on a list of {n} tasks")
        print(f"first pass (writes {n} files): {first * 1000:.0f} ms")
        print(f"a pass with nothing to do: median {median_ms(idle_s):.1f} ms "
              f"(task-list --format json of the same tasks: {median_ms(list_s):.1f} ms; "
              f"/bin/true {median_ms(true_s):.2f} ms)")
        follow = subprocess.Popen([tool("task-sync"), "--follow"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            to_file, to_store = [], []
            for i in range(rounds):
                subject = f"renamed {i}"
                run([tool("task-update"), "1", "--subject", subject], env)
                t0 = time.perf_counter()

                def shows():
                    try:
                        with open(os.path.join(folder, "1.json")) as f:
                            return json.load(f)["subject"] == subject
                    except (OSError, ValueError):
                        return False
                poll_until(shows)
                to_file.append(time.perf_counter() - t0)
                fid = n + 1 + i
                task = {"id": str(fid), "subject": f"from claude {i}", "description": "",
                        "status": "pending", "blocks": [], "blockedBy": []}
                with open(os.path.join(folder, f"{fid}.json"), "w") as f:
                    f.write(json.dumps(task, indent=2))
                t0 = time.perf_counter()
                # Imported as the next task here (its id on this side is n + 1 + i).
                poll_until(lambda: subprocess.run([tool("task-list"), str(n + 1 + i)], env=env,
                                                  capture_output=True).returncode == 0)
                to_store.append(time.perf_counter() - t0)
            print(f"--follow, store -> file: median {median_ms(to_file):.0f} ms, max {max(to_file) * 1000:.0f} ms "
                  f"({rounds} changes)")
            print(f"--follow, file -> store: median {median_ms(to_store):.0f} ms, max {max(to_store) * 1000:.0f} ms "
                  f"(a task-list poll included)")
            time.sleep(1.0)
            c0 = proc_cpu(follow.pid)
            time.sleep(idle_cpu)
            cpu = proc_cpu(follow.pid) - c0
            print(f"--follow idle {idle_cpu:g} s: {cpu * 1000:.0f} ms CPU = {cpu / idle_cpu * 100:.2f} % of a core")
        finally:
            follow.terminate()
            follow.wait()
        print()


def bench_scopes(held=10_000, rounds=100):
    """Claim cost of a scoped task with 10 000 scoped tasks in progress against none
    (target: flat)."""
    def claim_ms(with_held):
        with tempfile.TemporaryDirectory() as d:
            env = env_for(os.path.join(d, "tasks.db"))
            lines = os.path.join(d, "held.jsonl")
            with open(lines, "w") as f:
                for i in range(held):
                    f.write(json.dumps({"subject": f"held {i}", "scopes": [f"src/m{i}/lib.rs"]}) + "\n")
            run([tool("task-create"), "--from", lines], env)
            if with_held:
                ids = run([tool("task-list"), "--format", "ids", "--limit", str(held)], env).stdout.split()
                run([tool("task-update"), "-", "--status", "in_progress"], env, input="\n".join(ids))
            else:
                run([tool("task-update"), "-", "--status", "completed"], env,
                    input="\n".join(run([tool("task-list"), "--format", "ids"], env).stdout.split()))
            run([tool("task-create"), "candidate", "--scope", "docs/guide.md"], env)
            samples = []
            for _ in range(rounds):
                dt, code = spawn_once([tool("task-update"), "--claim", "--owner", "b"], env)
                assert code == 0, "nothing claimed"
                samples.append(dt)
                run([tool("task-update"), "--release", str(held + 1)], env)
            return median_ms(samples)
    none, busy = claim_ms(False), claim_ms(True)
    print(f"## claim of a scoped task ({rounds} runs, median)")
    print(f"no scoped task in progress: {none:.2f} ms; {held} in progress: {busy:.2f} ms; ratio {busy / none:.2f}")
    print()


def random_dag(n, seed):
    """A random layered plan: n tasks in layers of 5 to 30, each after the first layer
    waiting for 0 to 3 tasks of earlier layers; a duration of 5 to 50 ms each. Returns
    (durations in s, blockers by task index). Task i gets id i + 1."""
    import random
    rnd = random.Random(seed)
    layers, i = [], 0
    while i < n:
        size = min(rnd.randint(5, 30), n - i)
        layers.append(list(range(i, i + size)))
        i += size
    dur = [rnd.randint(5, 50) / 1000 for _ in range(n)]
    blockers = [[] for _ in range(n)]
    for k, layer in enumerate(layers[1:], start=1):
        earlier = [t for l in layers[:k] for t in l]
        for t in layer:
            blockers[t] = sorted(rnd.sample(earlier, min(rnd.randint(0, 3), len(earlier))))
    return dur, blockers


def chain_last_dag(n, chain=40, step=0.02):
    """n - chain independent tasks of 5 to 50 ms, then a chain of `chain` tasks of
    `step` s whose head has the highest id: id order starts the chain last."""
    import random
    rnd = random.Random(1)
    free = n - chain
    dur = [rnd.randint(5, 50) / 1000 for _ in range(free)] + [step] * chain
    blockers = [[] for _ in range(free)] + [[i + 1] for i in range(free, n - 1)] + [[]]
    return dur, blockers


def bench_makespan(n=300, jobs=4, seeds=5):
    """Critical-path claim order: random layered plans (300 tasks, fan-in 0-3, `sleep`
    5-50 ms), worker-spawn -j 4, several seeds: the time the whole run takes with the
    claim's order (priority, depth, id) against plain id order (every task given
    priority -id, which the claim puts first) and against the lower bound
    max(longest chain, total work / 4). Targets: never worse than id order, within 15 %
    of the bound on average."""
    rows = []
    plans = [(f"layered {seed}", random_dag(n, seed)) for seed in range(seeds)]
    plans.append(("chain last", chain_last_dag(n, chain=max(4, n // 8))))
    with tempfile.TemporaryDirectory() as d:
        for seed, (name, (dur, blockers)) in enumerate(plans):
            # The longest chain, in time: each task finishes after its blockers.
            finish = {}
            def done(i):
                if i not in finish:
                    finish[i] = dur[i] + max((done(b) for b in blockers[i]), default=0.0)
                return finish[i]
            bound = max(max(done(i) for i in range(n)), sum(dur) / jobs)
            got = {}
            for order in ("depth", "id"):
                lines = os.path.join(d, f"{order}{seed}.jsonl")
                with open(lines, "w") as f:
                    for i in range(n):
                        rec = {"key": f"t{i}", "subject": f"t{i}", "description": f"{dur[i]:.3f}",
                               "blockedBy": [f"t{b}" for b in blockers[i]]}
                        if order == "id":
                            rec["priority"] = -(i + 1)
                        f.write(json.dumps(rec) + "\n")
                env = env_for(os.path.join(d, f"{order}{seed}.db"))
                run([tool("task-create"), "--from", lines, "--format", "ids"], env)
                t0 = time.perf_counter()
                p = subprocess.run([tool("worker-spawn"), "-j", str(jobs), "--no-progress", "--",
                                    "sleep", "{description}"], env=env, capture_output=True, text=True)
                got[order] = time.perf_counter() - t0
                assert p.returncode == 0, p.stderr
            rows.append((name, bound, got["depth"], got["id"]))
    print(f"## makespan: {n} tasks, sleep 5-50 ms, -j {jobs}; random layered plans (fan-in 0-3) "
          f"and one whose longest chain has the highest ids")
    print(f"{'plan':<12} {'bound s':>8} {'depth s':>8} {'id s':>8} {'depth/bound':>11} {'id/bound':>9} {'depth/id':>9}")
    for name, bound, dep, ido in rows:
        print(f"{name:<12} {bound:>8.3f} {dep:>8.3f} {ido:>8.3f} {dep / bound:>11.2f} {ido / bound:>9.2f} {dep / ido:>9.2f}")
    mean = lambda xs: sum(xs) / len(xs)
    layered = rows[:-1]
    print(f"layered mean: depth order {mean([r[2] / r[1] for r in layered]):.2f}x the bound, "
          f"id order {mean([r[3] / r[1] for r in layered]):.2f}x; depth/id {mean([r[2] / r[3] for r in layered]):.2f}")
    print()


def bench_depth(n=1000, big=100_000, rounds=5):
    """What keeping the claim's depth costs writes: a batch that is one chain of n tasks
    (written blockers first, and goal first: blockers with the higher ids) against n
    independent tasks; a chain of `big` against `big` independent tasks; one
    task-create under an open chain of n against one with no blocker."""
    def batch(path, m, shape):
        with open(path, "w") as f:
            for i in range(m):
                after = {"first": [f"k{i - 1}"] if i > 0 else [],
                         "goal": [f"k{i + 1}"] if i < m - 1 else [],
                         "flat": []}[shape]
                f.write(json.dumps({"key": f"k{i}", "subject": "s", "blockedBy": after}) + "\n")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for m, reps in ((n, rounds), (big, 1)):
            for shape in ("flat", "first", "goal"):
                if m == big and shape == "goal":
                    continue
                lines = os.path.join(d, f"{shape}{m}.jsonl")
                batch(lines, m, shape)
                times = []
                for r in range(reps):
                    env = env_for(os.path.join(d, f"{shape}{m}-{r}.db"))
                    t0 = time.perf_counter()
                    run([tool("task-create"), "--from", lines, "--format", "ids"], env)
                    times.append(time.perf_counter() - t0)
                rows.append((f"batch of {m}: {shape}", statistics.median(times)))
        chain = env_for(os.path.join(d, f"first{n}-0.db"))
        flat = env_for(os.path.join(d, f"flat{n}-0.db"))
        under = [spawn_once([tool("task-create"), "x", "-b", str(n)], chain)[0] for _ in range(rounds * 5)]
        alone = [spawn_once([tool("task-create"), "x"], flat)[0] for _ in range(rounds * 5)]
    print(f"## depth upkeep (batches: median of {rounds}, the {big} ones once)")
    for name, t in rows:
        print(f"{name:<28} {t * 1000:>9.1f} ms")
    print(f"task-create under an open chain of {n}: {median_ms(under):.2f} ms; "
          f"with no blocker: {median_ms(alone):.2f} ms")
    print()


def bench_watch(idle=10.0):
    """CPU of an idle `task-list --watch`, streaming JSON lines and drawing the screen
    (on a pseudo-terminal), against an idle task-wait, each for `idle` seconds."""
    import pty, termios, fcntl
    with tempfile.TemporaryDirectory() as d:
        env = env_for(os.path.join(d, "tasks.db"))
        tid = run([tool("task-create"), "never"], env).stdout.strip()

        def cpu_of(argv, **kw):
            p = subprocess.Popen(argv, env=env, **kw)
            time.sleep(1.0)  # past start-up and the first draw
            before = proc_cpu(p.pid)
            time.sleep(idle)
            used = proc_cpu(p.pid) - before
            assert p.poll() is None, f"{argv} ended early with {p.returncode}"
            p.terminate()
            p.wait()
            return used

        rows = [("task-wait", cpu_of([tool("task-wait"), tid], stdout=subprocess.DEVNULL)),
                ("task-list --watch (jsonl)", cpu_of([tool("task-list"), "--watch", "--format", "jsonl"],
                                                     stdout=subprocess.DEVNULL))]
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x18\x00\x50\x00\x00\x00\x00\x00")  # 24 x 80

        def own_terminal():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        drain = subprocess.Popen(["cat"], stdin=master, stdout=subprocess.DEVNULL)
        rows.append(("task-list --watch (screen)",
                     cpu_of([tool("task-list"), "--watch"], stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=own_terminal)))
        drain.kill()
        os.close(slave)
        os.close(master)
    print(f"## idle for {idle:g} s on a quiet list: CPU as a share of one core")
    for name, used in rows:
        print(f"{name:<28} {used / idle * 100:>6.2f} %")
    print()


def bench_profile(rounds=200):
    """Where one call's time goes, phase by phase: each phase is the difference between
    two variants of the real binary (built with the `probe` feature, `TASK_PROBE_EXIT=PHASE`
    exits right after that phase), interleaved, medians. Beside them the floor: the
    smallest program opening the store the same way and inserting one row (or reading
    100), /bin/true, and the sqlite3 CLI doing the same work when it is installed."""
    import shutil
    probe_dir = os.path.join(ROOT, "target", "probe")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--features", "probe",
                    "--target-dir", probe_dir], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "floor", "-p", "taskstore"],
                   cwd=ROOT, check=True)
    pbin = os.path.join(probe_dir, host_tuple(), "release")
    floor = os.path.join(BIN, "examples", "floor")
    phases = ["start", "parse", "open", "statement", "commit", None]
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "tasks.db")
        env = env_for(db)
        lines = os.path.join(d, "100.jsonl")
        create_lines(lines, 100)
        run([tool("task-create"), "--from", lines], env)
        calls = {"task-create SUBJECT": ["task-create", "x"],
                 "task-update --claim": ["task-update", "--claim", "--owner", "p"],
                 "task-list (100 tasks)": ["task-list", "--limit", "100"]}
        samples = {(c, p): [] for c in calls for p in phases}
        base = {"/bin/true": [], "floor: insert one row": [], "floor: read 100 rows": []}
        sqlite3 = shutil.which("sqlite3")
        if sqlite3:
            base["sqlite3 CLI: insert one row"] = []
            base["sqlite3 CLI: select 100 rows"] = []
        ins = ("BEGIN IMMEDIATE; UPDATE lists SET last_id = last_id + 1 WHERE name = 'bench'; "
               "INSERT INTO tasks (list_id, id, subject, created_at, updated_at) SELECT id, last_id, "
               "'cli', 0, 0 FROM lists WHERE name = 'bench'; COMMIT;")
        sel = ("SELECT t.id, t.subject, t.status, t.owner FROM tasks t JOIN lists l ON l.id = t.list_id "
               "WHERE l.name = 'bench' ORDER BY t.id LIMIT 100;")
        for i in range(rounds):
            for name, argv in calls.items():
                for ph in phases:
                    e = dict(env)
                    if ph:
                        e["TASK_PROBE_EXIT"] = ph
                    samples[(name, ph)].append(spawn_once([os.path.join(pbin, argv[0])] + argv[1:], e)[0])
            base["/bin/true"].append(spawn_once(["/bin/true"], env)[0])
            base["floor: insert one row"].append(spawn_once([floor], env)[0])
            base["floor: read 100 rows"].append(spawn_once([floor, "read"], env)[0])
            if sqlite3:
                base["sqlite3 CLI: insert one row"].append(spawn_once([sqlite3, db, ins], env)[0])
                base["sqlite3 CLI: select 100 rows"].append(spawn_once([sqlite3, db, sel], env)[0])
            # Untimed: keep about 100 tasks, none held.
            run([tool("task-update"), "--release", *run([tool("task-list"), "-s", "in_progress",
                 "--format", "ids"], env).stdout.split()], env)
        true_ms = median_ms(base["/bin/true"])
        print(f"## start-up profile ({rounds} runs each, medians; ms, and x /bin/true)")
        names = ["exec+load", "parse args", "open+pragmas+schema", "statement", "commit", "close+exit"]
        print(f"{'call':<24}" + "".join(f"{n:>21}" for n in names) + f"{'whole':>14}")
        for c in calls:
            cum = [median_ms(samples[(c, p)]) for p in phases]
            parts = [cum[0]] + [max(cum[k] - cum[k - 1], 0.0) for k in range(1, len(cum))]
            print(f"{c:<24}" + "".join(f"{v:>21.3f}" for v in parts)
                  + f"{cum[-1]:>8.3f} {cum[-1] / true_ms:>4.2f}x")
        for name, v in base.items():
            print(f"{name:<30} {median_ms(v):>8.3f} ms {median_ms(v) / true_ms:>6.2f}x")
        if not sqlite3:
            print("sqlite3 CLI not installed: its rows are left out (apt-get install sqlite3)")
        print()



def psql(url, sql):
    return run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], dict(os.environ)).stdout.strip()


class PgDatabase:
    """A fresh database on the BENCH_PG server for the duration of a `with`."""

    def __init__(self, base, name):
        self.base, self.name = base.rstrip("/"), name

    def __enter__(self):
        psql(f"{self.base}/postgres", f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        psql(f"{self.base}/postgres", f"CREATE DATABASE {self.name}")
        return f"{self.base}/{self.name}"

    def __exit__(self, *exc):
        psql(f"{self.base}/postgres", f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def claim_throughput(env, n, workers):
    """Tasks per second through `workers` concurrent shell-style workers, each a loop of
    task-update --claim and task-update --status completed --token (whole processes)."""
    import threading
    lines = os.path.join(tempfile.gettempdir(), f"pt-bench-{os.getpid()}.jsonl")
    create_lines(lines, n)
    run([tool("task-create"), "--from", lines], env)
    os.remove(lines)

    def worker(w):
        while True:
            p = subprocess.run([tool("task-update"), "--claim", "--owner", f"w{w}", "--format", "env"],
                               env=env, capture_output=True, text=True)
            if p.returncode == 1:
                return
            assert p.returncode == 0, p.stderr
            kv = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
            run([tool("task-update"), kv["TASK_ID"].strip("'"), "-s", "completed",
                 "--token", kv["TASK_CLAIM_TOKEN"].strip("'")], env)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    done = json.loads(run([tool("task-list"), "-s", "completed", "--count", "--format", "json"], env).stdout)
    assert done["completed"] == n, done
    return n / dt


def bench_pg(rounds=200, n=400, spawn_n=2000):
    """The PostgreSQL backend (BENCH_PG): one call against `psql -c` doing the same
    insert; claim+complete throughput with 1, 4, 16 workers next to SQLite; worker-spawn
    -j 4 over 2 000 no-op tasks on both; task-wait's wake-up through LISTEN/NOTIFY."""
    base = os.environ.get("BENCH_PG")
    if not base:
        print("## pg: SKIPPED, set BENCH_PG=postgres://USER:PASSWORD@HOST:PORT\n")
        return
    with PgDatabase(base, "pt_bench") as url, tempfile.TemporaryDirectory() as d:
        env = env_for(url)
        lines = os.path.join(d, "100.jsonl")
        create_lines(lines, 100)
        run([tool("task-create"), "--from", lines], env)
        lpk = psql(url, "SELECT id FROM lists WHERE name = 'bench'")
        insert = ("INSERT INTO tasks (list_id, id, subject, description, status, metadata, created_at, "
                  "updated_at) SELECT %s, last_id + 1, 'psql', '', 'pending', '{}', 0, 0 FROM lists "
                  "WHERE id = %s" % (lpk, lpk))
        bump = f"UPDATE lists SET last_id = last_id + 1 WHERE id = {lpk}"
        psql_argv = [subprocess.run(["which", "psql"], capture_output=True, text=True).stdout.strip(),
                     url, "-qAtX", "-c", f"BEGIN; {insert}; {bump}; COMMIT"]
        rows = {k: [] for k in ["/bin/true", "psql -c (the same insert)", "task-create SUBJECT",
                                "task-update --claim", "task-list (100 tasks)"]}
        for i in range(rounds):
            rows["/bin/true"].append(spawn_once(["/bin/true"], env)[0])
            dt, code = spawn_once(psql_argv, env)
            assert code == 0
            rows["psql -c (the same insert)"].append(dt)
            rows["task-create SUBJECT"].append(spawn_once([tool("task-create"), f"extra {i}"], env)[0])
            dt, code = spawn_once([tool("task-update"), "--claim", "--owner", "bench"], env)
            assert code == 0
            rows["task-update --claim"].append(dt)
            rows["task-list (100 tasks)"].append(spawn_once([tool("task-list"), "--limit", "100"], env)[0])
            ids = run([tool("task-list"), "-s", "in_progress", "--format", "ids"], env).stdout.split()
            run([tool("task-update"), "--release", *ids], env)
            psql(url, f"DELETE FROM tasks WHERE list_id = {lpk} AND id > 100")
        base_ms = median_ms(rows["/bin/true"])
        psql_ms = median_ms(rows["psql -c (the same insert)"])
        print(f"## PostgreSQL: one whole-process call ({rounds} runs each, median; 100-task list)")
        print(f"{'command':<28} {'median ms':>10} {'x /bin/true':>12} {'x psql -c':>10}")
        for k, v in rows.items():
            m = median_ms(v)
            print(f"{k:<28} {m:>10.3f} {m / base_ms:>12.2f} {m / psql_ms:>10.2f}")
        print()

    print(f"## claim + complete, {n} tasks, whole processes per step (tasks/s)")
    print(f"{'workers':>8} {'SQLite':>10} {'PostgreSQL':>11}")
    for w in [1, 4, 16]:
        with tempfile.TemporaryDirectory() as d, PgDatabase(base, f"pt_bench_t{w}") as url:
            lite = claim_throughput(env_for(os.path.join(d, "t.db")), n, w)
            pg = claim_throughput(env_for(url), n, w)
        print(f"{w:>8} {lite:>10.0f} {pg:>11.0f}")
    print()

    print(f"## worker-spawn -j 4 -- true over {spawn_n} tasks")
    with tempfile.TemporaryDirectory() as d, PgDatabase(base, "pt_bench_w") as url:
        lines = os.path.join(d, "w.jsonl")
        create_lines(lines, spawn_n)
        for name, db in [("SQLite", os.path.join(d, "w.db")), ("PostgreSQL", url)]:
            env = env_for(db)
            run([tool("task-create"), "--from", lines], env)
            t0 = time.perf_counter()
            run([tool("worker-spawn"), "-j", "4", "--no-progress", "--", "true"], env)
            dt = time.perf_counter() - t0
            print(f"{name:<11} {dt:.3f} s  {spawn_n / dt:.0f} tasks/s")
        print()
        env = env_for(url)
        lat = wake_latencies(env, max(3, rounds // 10), 0.05)
        print(f"## task-wait wake-up through LISTEN/NOTIFY ({len(lat)} runs): "
              f"median {median_ms(lat):.2f} ms, max {max(lat) * 1000:.2f} ms")
        print()


def bench_before(rounds=300):
    """task-create on SQLite, whole process: this build against BENCH_BEFORE (a revision
    built in a temporary worktree), interleaved, so that what linking the PostgreSQL
    client costs SQLite users shows next to noise."""
    rev = os.environ.get("BENCH_BEFORE", "ca0efaa")
    wt = os.path.join(ROOT, "target", "bench-before")
    subprocess.run(["git", "worktree", "remove", "--force", wt], cwd=ROOT, capture_output=True)
    subprocess.run(["git", "worktree", "add", "--detach", wt, rev], cwd=ROOT, check=True, capture_output=True)
    try:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=wt, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "before")))
        old = os.path.join(ROOT, "target", "before", host_tuple(), "release", "task-create")
        with tempfile.TemporaryDirectory() as d:
            env = env_for(os.path.join(d, "tasks.db"))
            run([old, "first"], env)
            rows = {"/bin/true": [], f"task-create at {rev}": [], "task-create now": []}
            for i in range(rounds):
                rows["/bin/true"].append(spawn_once(["/bin/true"], env)[0])
                rows[f"task-create at {rev}"].append(spawn_once([old, f"old {i}"], env)[0])
                rows["task-create now"].append(spawn_once([tool("task-create"), f"new {i}"], env)[0])
        sizes = {"before": os.path.getsize(old), "now": os.path.getsize(tool("task-create"))}
        b = median_ms(rows["/bin/true"])
        print(f"## SQLite task-create, this build against {rev} ({rounds} runs each, median)")
        for k, v in rows.items():
            print(f"{k:<28} {median_ms(v):>8.3f} ms {median_ms(v) / b:>6.2f}x /bin/true")
        print(f"binary size: {sizes['before'] / 1e6:.1f} MB at {rev}, {sizes['now'] / 1e6:.1f} MB now")
        print()
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", wt], cwd=ROOT, capture_output=True)


BENCHES = {"calls": bench_calls, "profile": bench_profile, "batch": bench_batch, "scale": bench_scale, "wait": bench_wait,
           "workers": bench_workers, "sync": bench_sync, "scopes": bench_scopes, "makespan": bench_makespan, "depth": bench_depth, "watch": bench_watch, "stop": bench_stop, "claude": bench_claude, "mcp": bench_mcp, "html": bench_html, "pg": bench_pg, "before": bench_before}
# Run only when named: it builds another revision.
NOT_BY_DEFAULT = {"before"}

# --quick: the same code paths with a few iterations and small inputs.
QUICK = {"calls": {"rounds": 5}, "profile": {"rounds": 3}, "batch": {"n": 1000, "rounds": 1},
         "scale": {"small": 100, "large": 1000, "rounds": 5}, "wait": {"rounds": 3, "idle_cpu": 1.0},
         "workers": {"n": 100, "rounds": 1}, "sync": {"n": 50, "rounds": 2, "idle_cpu": 1.0},
         "scopes": {"held": 100, "rounds": 3}, "makespan": {"n": 40, "seeds": 1}, "depth": {"n": 50, "big": 500, "rounds": 1},
         "watch": {"idle": 1.0}, "stop": {"rounds": 2}, "claude": {"rounds": 2}, "mcp": {"rounds": 5}, "html": {"n": 200, "rounds": 1}, "pg": {"rounds": 3, "n": 20, "spawn_n": 50},
         "before": {"rounds": 3}}


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    what = [a for a in args if a != "--quick"] or [b for b in BENCHES if b not in NOT_BY_DEFAULT]
    unknown = [w for w in what if w not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmark {unknown}; choose from {list(BENCHES)}")
    build()
    if quick:
        print("# --quick: a smoke run; the figures below mean nothing\n")
    for w in what:
        BENCHES[w](**(QUICK[w] if quick else {}))


if __name__ == "__main__":
    main()
