#!/usr/bin/env python3
"""A scripted stand-in for the Anthropic Messages API, for running the real Claude Code
CLI in tests (tests/real_claude.rs). Python 3 standard library only; loopback only.

    model.py serve SCRIPTS LOG [--port-file FILE]
        Listen on 127.0.0.1 on a free port; print `port N` on stdout (and write N to
        FILE) once it accepts connections. SCRIPTS is a JSON file, or a folder of
        *.json files, each an object {"NAME": [TURN, ...], ...}, read again for every
        request. Every request is appended to LOG as one JSON line: {"path", "script",
        "turn", "body", "tool_results"}.
    model.py seen LOG [NAME]
        Print, one JSON line each, every tool_result the model received (in the order
        received, each once), optionally only for script NAME: {"script", "turn", "id",
        "name", "input", "is_error", "content"}, name and input being those of the
        tool_use it answers.

A conversation picks its script by a marker `[script:NAME]` anywhere in its first user
message; the turn is the number of assistant messages in the request (so a retried
request gets the same turn again). Past the script's end the last turn repeats. A
request without a marker (or naming an unknown script) gets the text "ok".

A TURN is an object with one of:
    {"text": "..."}                                  a reply that ends the turn
    {"tool_use": {"name": "Bash", "input": {...}}}   a tool call (or a list of them),
                                                     optionally with "text" before it
    {"error": 400 | 429 | 529 | ...}                 that HTTP status, the API's error JSON
and optionally "delay": SECONDS (waits before answering; {"delay": S} alone = "ok").
"""

import http.server
import json
import os
import re
import sys
import threading
import time

MARKER = re.compile(r"\[script:([A-Za-z0-9_.-]+)\]")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
LOCK = threading.Lock()
CALLS = iter(range(1, 1 << 62))  # tool_use ids, unique across conversations


def load_scripts(path):
    files = [path]
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".json")]
    scripts = {}
    for f in files:
        with open(f) as fh:
            scripts.update(json.load(fh))
    return scripts


def texts(content):
    """Every text of a message's content (a string or a list of blocks), nested too."""
    if isinstance(content, str):
        return [content]
    out = []
    for b in content or []:
        if isinstance(b, dict):
            if isinstance(b.get("text"), str):
                out.append(b["text"])
            if b.get("type") == "tool_reference":  # what ToolSearch loaded
                out.append(b.get("tool_name", ""))
            if "content" in b:
                out.extend(texts(b["content"]))
    return out


def pick(body):
    """(script name or None, turn index) of a request body."""
    msgs = body.get("messages") or []
    first = next((m for m in msgs if m.get("role") == "user"), None)
    name = None
    if first is not None:
        m = MARKER.search("\n".join(texts(first.get("content"))))
        name = m.group(1) if m else None
    return name, sum(1 for m in msgs if m.get("role") == "assistant")


def new_tool_results(body):
    """The tool_results after the last assistant message, with the call each answers."""
    msgs = body.get("messages") or []
    calls, last = {}, -1
    for i, m in enumerate(msgs):
        if m.get("role") == "assistant":
            last = i
            for b in m.get("content") if isinstance(m.get("content"), list) else []:
                if b.get("type") == "tool_use":
                    calls[b.get("id")] = b
    out = []
    for m in msgs[last + 1 :]:
        for b in m.get("content") if isinstance(m.get("content"), list) else []:
            if isinstance(b, dict) and b.get("type") == "tool_result":
                call = calls.get(b.get("tool_use_id"), {})
                out.append(
                    {
                        "id": b.get("tool_use_id"),
                        "name": call.get("name"),
                        "input": call.get("input"),
                        "is_error": bool(b.get("is_error")),
                        "content": "\n".join(texts(b.get("content"))),
                    }
                )
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK expects

    def log_message(self, *args):
        pass

    def reply(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        kind = ERROR_TYPES.get(status, "api_error")
        headers = [("retry-after", "0")] if status in (429, 529) else []
        self.reply(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)

    def do_GET(self):  # nothing is served by GET: a 404 in the API's shape
        self.error(404, f"no such path: {self.path}")

    def do_HEAD(self):  # reachability checks
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.error(400, "the body is not JSON")
        path = self.path.split("?")[0]
        name, turn = pick(body)
        record = {"path": self.path, "script": name, "turn": turn, "body": body}
        record["tool_results"] = new_tool_results(body)
        with LOCK, open(self.server.log, "a") as f:
            f.write(json.dumps(record) + "\n")
        if path.endswith("/count_tokens"):
            return self.reply(200, {"input_tokens": len(raw) // 4})
        if not path.endswith("/v1/messages"):
            return self.error(404, f"no such path: {self.path}")
        # Read on every request, so a test may add scripts while the server runs.
        steps = load_scripts(self.server.scripts).get(name) or [{"text": "ok"}]
        step = steps[min(turn, len(steps) - 1)]
        time.sleep(step.get("delay", 0))
        if "error" in step:
            return self.error(int(step["error"]), f"scripted error {step['error']}")
        blocks = []
        if step.get("text") or "tool_use" not in step:
            blocks.append({"type": "text", "text": step.get("text", "ok")})
        calls = step.get("tool_use", [])
        for i, c in enumerate(calls if isinstance(calls, list) else [calls]):
            blocks.append(
                {"type": "tool_use", "id": f"toolu_{next(CALLS):06d}", "name": c["name"],
                 "input": c.get("input", {})}
            )
        stop = "tool_use" if "tool_use" in step else "end_turn"
        message = {
            "id": f"msg_{name}_{turn}", "type": "message", "role": "assistant",
            "model": body.get("model", "scripted"), "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": len(raw) // 4, "output_tokens": 1},
        }
        if not body.get("stream"):
            message.update(content=blocks, stop_reason=stop)
            return self.reply(200, message)
        self.stream(message, blocks, stop)

    def stream(self, message, blocks, stop):
        """The reply as server-sent events, as the API streams it."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(kind, data):
            data["type"] = kind
            self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        event("message_start", {"message": message})
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                event("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                event("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": b["text"]}})
            else:  # tool_use: the input as JSON, in two pieces as the API splits it
                start = dict(b, input={})
                event("content_block_start", {"index": i, "content_block": start})
                js = json.dumps(b["input"])
                for part in (js[: len(js) // 2], js[len(js) // 2 :]):
                    delta = {"type": "input_json_delta", "partial_json": part}
                    event("content_block_delta", {"index": i, "delta": delta})
            event("content_block_stop", {"index": i})
        event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"output_tokens": 5}})
        event("message_stop", {})


def serve(scripts, log, port_file=None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    load_scripts(scripts)  # a bad file fails here, before the port is printed
    server.scripts, server.log = scripts, log
    open(log, "a").close()
    port = server.server_address[1]
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(port_file + ".tmp", port_file)  # whole or absent
    print(f"port {port}", flush=True)
    server.serve_forever()


def seen(log, name=None):
    done = set()  # a retried request carries the same results again
    with open(log) as f:
        for line in f:
            r = json.loads(line)
            if name is not None and r["script"] != name:
                continue
            for t in r["tool_results"]:
                if t["id"] not in done:
                    done.add(t["id"])
                    print(json.dumps(dict(t, script=r["script"], turn=r["turn"])))


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "serve":
        pf = a[a.index("--port-file") + 1] if "--port-file" in a else None
        serve(a[1], a[2], pf)
    elif len(a) in (2, 3) and a[0] == "seen":
        seen(*a[1:])
    else:
        sys.exit(__doc__)
