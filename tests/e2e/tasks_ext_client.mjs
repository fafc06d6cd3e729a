// The 2026-07-28 tasks extension (io.modelcontextprotocol/tasks, SEP-2663) from its own published
// client, npm @modelcontextprotocol/ext-tasks (createTaskSessionFromClient), over the v2
// TypeScript SDK's Client (@modelcontextprotocol/client, pinned to 2026-07-28), against a real
// vllm-mcp over Streamable HTTP. The package asks its host for `rawDispatch` (the SDK Client
// checks tools/call results against the core schema, which has no resultType "task"): here a
// plain fetch POST of the framed request, with the headers the spec names (Mcp-Method, Mcp-Name).
// Usage: node tasks_ext_client.mjs NODE_TOOLS SCENARIO.json
// SCENARIO: {"url": ..., "token": ..., "other_token": ...}
// Prints one JSON report on stdout for tests/e2e/test_tasks_ts_client.py; nothing is asserted here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const scenario = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const pkg = (rel) => import(pathToFileURL(join(process.argv[2], 'node_modules', '@modelcontextprotocol', rel)).href);
const { Client, StreamableHTTPClientTransport } = await pkg('client/dist/index.mjs');
const { createTaskSessionFromClient, resultFromTaskOutcome } = await pkg('ext-tasks/dist/client/index.js');

const VERSION = '2026-07-28';
const EXT = 'io.modelcontextprotocol/tasks';
const clientInfo = { name: 'vllm-mcp-ext-tasks-test', version: '1.0.0' };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const brief = (e) => ({ code: e?.code ?? null, message: String(e?.message ?? e) });
let ids = 0;

// One JSON-RPC request as a 2026-07-28 POST; the answer as the package expects it.
function rawDispatch(token) {
  return async (request, options = {}) => {
    const id = `raw-${++ids}`;
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': VERSION,
      'mcp-method': request.method,
      authorization: `Bearer ${token}`,
      ...(options.context?.headers ?? {}),
    };
    const name = request.method === 'tools/call' ? request.params?.name : request.params?.taskId;
    if (name !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'mcp-name')) headers['mcp-name'] = String(name);
    const response = await fetch(scenario.url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id, ...request }), signal: options.signal });
    const text = await response.text();
    let message;
    if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      for (const line of text.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const parsed = JSON.parse(line.slice(5));
        if (parsed.id === id) message = parsed;
      }
    } else if (text) {
      message = JSON.parse(text);
    }
    if (message === undefined) throw new Error(`no JSON-RPC answer (HTTP ${response.status}): ${text.slice(0, 300)}`);
    return message.error ? { kind: 'error', error: message.error } : { kind: 'result', result: message.result };
  };
}

// A request framed as a declaring (or not) 2026-07-28 client, for the checks the session does not make.
async function raw(token, method, params, declare = true) {
  const capabilities = declare ? { extensions: { [EXT]: {} } } : {};
  const meta = { 'io.modelcontextprotocol/protocolVersion': VERSION, 'io.modelcontextprotocol/clientInfo': clientInfo, 'io.modelcontextprotocol/clientCapabilities': capabilities };
  return rawDispatch(token)({ method, params: { ...params, _meta: meta } });
}

async function connect(token) {
  const client = new Client(clientInfo, { versionNegotiation: { mode: { pin: VERSION } } });
  await client.connect(new StreamableHTTPClientTransport(new URL(scenario.url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  const session = createTaskSessionFromClient(client, {
    endpointId: 'vllm-mcp-e2e',
    rawDispatch: rawDispatch(token),
    v2RequestFraming: { protocolVersion: VERSION, clientInfo, clientCapabilities: {} },
  });
  return { client, session };
}

async function watch(execution, stopWhen) {
  const seen = [];
  for await (const event of execution.updates()) {
    if (event.type === 'task') {
      seen.push({ status: event.task.status, statusMessage: event.task.statusMessage ?? null, taskId: event.task.taskId });
      if (stopWhen?.(event.task)) break;
    } else {
      seen.push({ outcome: event.outcome.status });
    }
  }
  return seen;
}

const report = {};
const { client, session } = await connect(scenario.token);
try {
  report.era = client.getProtocolEra();
  report.extensions = client.getServerCapabilities()?.extensions ?? null;
  const ask = (content, extra) => ({ messages: [{ role: 'user', content }], seed: 3, ...extra });

  // 1. A generation that outlasts the server's second: a task, polled to its result. The time
  // budget ends it after 5 s whatever this machine's speed, with the text so far.
  const long = await session.callTool('chat_completion', ask('Tell a long story.', { max_tokens: 60_000, min_tokens: 60_000, timeout_s: 5 }));
  report.long_kind = long.kind;
  report.long_task_id = long.handle?.taskId ?? null;
  report.long_events = await watch(long);
  const outcome = await long.result();
  report.long_outcome = outcome.status;
  report.long_result = outcome.status === 'completed' ? resultFromTaskOutcome(outcome) : brief(outcome.error);

  // 2. A short one: answered at once, no task.
  const short = await session.callTool('chat_completion', ask('Hi.', { max_tokens: 2 }));
  report.short_kind = short.kind;
  report.short_result = resultFromTaskOutcome(await short.result());

  // 3. Bad arguments: the plain call's error, no task.
  const bad = await session.callTool('complete', { prompt: 'x', temperature: 9 });
  report.bad_kind = bad.kind;
  report.bad_result = resultFromTaskOutcome(await bad.result());

  // 4. A long completion, cancelled while it generates: the engine request stops.
  const endless = await session.callTool('complete', { prompt: 'Once upon a time', max_tokens: 60_000, min_tokens: 60_000 });
  report.endless_kind = endless.kind;
  const endlessId = endless.handle?.taskId ?? null;
  report.endless_events = await watch(endless, (task) => (task.statusMessage ?? '').startsWith('generating'));
  await endless.cancel();
  report.endless_outcome = (await endless.result()).status;
  let got;
  for (let i = 0; i < 200; i++) {
    got = await raw(scenario.token, 'tasks/get', { taskId: endlessId });
    if (got.result?.status === 'cancelled') break;
    await sleep(100);
  }
  report.endless_get = got;
  for (let i = 0; i < 100; i++) {
    const info = await client.callTool({ name: 'model_info', arguments: {} });
    report.unfinished_after_cancel = info.structuredContent.engine_unfinished_requests;
    if (report.unfinished_after_cancel === 0) break;
    await sleep(100);
  }

  // 5. The finished task again, on a request of its own (any replica could answer it); another
  // caller cannot see it; a request that does not declare the extension is refused.
  report.again = await raw(scenario.token, 'tasks/get', { taskId: report.long_task_id });
  report.other = await raw(scenario.other_token, 'tasks/get', { taskId: report.long_task_id });
  report.undeclared = await raw(scenario.token, 'tasks/get', { taskId: report.long_task_id }, false);
  report.ids = { long: report.long_task_id, endless: endlessId };
} catch (e) {
  report.failure = { ...brief(e), stack: String(e?.stack ?? '').slice(0, 2000) };
} finally {
  session.close();
  await client.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
