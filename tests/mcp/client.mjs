// The official MCP TypeScript SDK's client, driving task-mcp over stdio for tests/mcp.rs.
//
//   node client.mjs STEPS.json
//
// Starts `$TASK_MCP_BIN` (with this process's environment: TASK_DB, the list, …) through
// the SDK's StdioClientTransport, initializes, lists the tools (so that the SDK checks
// every result's structuredContent against the tool's outputSchema, as it does for any
// user), then runs STEPS, an array of:
//   {"tools": true}                       → {"tools": [...]}: the listed tools
//   {"call": NAME, "args": {...}}         → {"result": ...} | {"rpcError": {code, message}}
//                                           | {"thrown": message}  (e.g. a result that
//                                           does not match its output schema)
//   {"sh": "shell command"}               → {"sh": {code, stdout, stderr}}
// A string argument "${N.a.b}" is replaced by field a.b of step N's structuredContent
// (steps count from 0), so a step can pass on what an earlier one answered (a claimToken).
// and prints one JSON line per step. The SDK lives in $TASK_TEST_MCP_SDK (a node_modules
// folder; .ci/mcp installs it pinned).
import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const sdk = process.env.TASK_TEST_MCP_SDK;
const load = (p) => import(pathToFileURL(join(sdk, "@modelcontextprotocol/sdk/dist/esm", p)).href);
const { Client } = await load("client/index.js");
const { StdioClientTransport } = await load("client/stdio.js");
const { McpError } = await load("types.js");

const steps = JSON.parse(readFileSync(process.argv[2], "utf8"));
const transport = new StdioClientTransport({
  command: process.env.TASK_MCP_BIN,
  args: JSON.parse(process.env.TASK_MCP_ARGS || "[]"),
  env: process.env,
  stderr: "inherit",
});
const client = new Client({ name: "parallel-tasks-tests", version: "1.0.0" });
await client.connect(transport);
await client.listTools();

const answers = [];
const bind = (v) => {
  if (typeof v === "string") {
    const m = /^\$\{(\d+)\.([\w.]+)\}$/.exec(v);
    if (!m) return v;
    let at = answers[Number(m[1])]?.result?.structuredContent;
    for (const k of m[2].split(".")) at = at?.[k];
    if (at === undefined) throw new Error(`${v}: no such field in step ${m[1]}'s answer`);
    return at;
  }
  if (Array.isArray(v)) return v.map(bind);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, bind(x)]));
  return v;
};
const say = (o) => answers.push(o) && process.stdout.write(JSON.stringify(o) + "\n");
for (const step of steps) {
  if (step.tools) {
    say({ tools: (await client.listTools()).tools });
  } else if (step.call) {
    try {
      const result = await client.callTool(
        { name: step.call, arguments: bind(step.args ?? {}) },
        undefined,
        { timeout: step.timeoutMs ?? 400000 },
      );
      say({ result });
    } catch (e) {
      if (e instanceof McpError) say({ rpcError: { code: e.code, message: e.message } });
      else say({ thrown: String(e && e.message ? e.message : e) });
    }
  } else if (step.sh !== undefined) {
    try {
      const stdout = execSync(step.sh, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      say({ sh: { code: 0, stdout, stderr: "" } });
    } catch (e) {
      say({ sh: { code: e.status ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" } });
    }
  } else {
    throw new Error("unknown step " + JSON.stringify(step));
  }
}
await client.close();
