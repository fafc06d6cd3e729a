// The TypeScript SDK's client (npm @modelcontextprotocol/sdk, pinned in .ci/run) running
// calls as MCP tasks (2025-11-25) through its experimental tasks API, against a real
// vllm-mcp. Usage: node tasks_client.mjs NODE_TOOLS SCENARIO.json
// SCENARIO: {"transport": "stdio", "command": ..., "args": [...], "env": {...}}
//        or {"transport": "http", "url": ..., "token": ..., "other_token": ...}
// Prints one JSON report on stdout: what the client saw, for tests/e2e/test_tasks_ts_client.py
// to judge. Nothing is asserted here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const scenario = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const sdk = (rel) => import(pathToFileURL(join(process.argv[2], 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm', rel)).href);
const { Client } = await sdk('client/index.js');
const { StdioClientTransport } = await sdk('client/stdio.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { CallToolResultSchema, TaskStatusNotificationSchema } = await sdk('types.js');

function transport(token) {
  if (scenario.transport === 'stdio') {
    return new StdioClientTransport({ command: scenario.command, args: scenario.args, env: scenario.env, stderr: 'ignore' });
  }
  return new StreamableHTTPClientTransport(new URL(scenario.url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
}

// notifications/tasks/status as the client's handler received them, on the first connection.
const statusNotes = [];

async function connect(token, notes) {
  const client = new Client({ name: 'vllm-mcp-tasks-test', version: '1.0.0' });
  if (notes) {
    client.setNotificationHandler(TaskStatusNotificationSchema, (n) => {
      notes.push({ taskId: n.params.taskId, status: n.params.status, statusMessage: n.params.statusMessage ?? null, meta: n.params._meta ?? null });
    });
  }
  await client.connect(transport(token));
  return client;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const brief = (e) => ({ code: e?.code ?? null, message: String(e?.message ?? e) });
const report = {};
const client = await connect(scenario.token, statusNotes);
const TIMEOUT = { timeout: 600_000, resetTimeoutOnProgress: true };

try {
  report.capabilities = client.getServerCapabilities()?.tasks ?? null;
  report.protocol = client.transport?.protocolVersion ?? null;
  const tools = (await client.listTools()).tools;
  report.task_support = Object.fromEntries(tools.map((t) => [t.name, t.execution?.taskSupport ?? null]));

  // 1. A chat turn as a task: created, polled, its result fetched.
  const ask = { messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 16, min_tokens: 16, seed: 3 };
  const events = [];
  for await (const message of client.experimental.tasks.callToolStream(
    { name: 'chat_completion', arguments: ask }, undefined, { task: { ttl: 120_000 }, ...TIMEOUT })) {
    if (message.type === 'error') events.push({ type: 'error', ...brief(message.error) });
    else if (message.type === 'result') events.push({ type: 'result', result: message.result });
    else events.push({ type: message.type, status: message.task.status, taskId: message.task.taskId, ttl: message.task.ttl });
  }
  report.chat = events;
  const chatId = events[0]?.taskId;
  report.chat_get = await client.experimental.tasks.getTask(chatId);
  report.chat_result = await client.experimental.tasks.getTaskResult(chatId, CallToolResultSchema, TIMEOUT);

  // 2. A long completion as a task, cancelled while it generates.
  const long = { prompt: 'Once upon a time', max_tokens: 60_000, min_tokens: 60_000 };
  const stream = client.experimental.tasks.callToolStream(
    { name: 'complete', arguments: long }, undefined, { task: { ttl: 120_000 }, ...TIMEOUT });
  const first = (await stream.next()).value;
  const longId = first.task.taskId;
  report.long_created = first.task.status;
  const seen = [];
  for (let i = 0; i < 600; i++) {
    const task = await client.experimental.tasks.getTask(longId);
    seen.push(task.statusMessage ?? '');
    if ((task.statusMessage ?? '').startsWith('generating')) break;
    await sleep(200);
  }
  report.long_messages = seen;
  report.cancel = await client.experimental.tasks.cancelTask(longId);
  const rest = [];
  for await (const message of stream) rest.push(message.type === 'error' ? { type: 'error', ...brief(message.error) } : { type: message.type, status: message.task?.status });
  report.long_rest = rest;
  report.long_get = await client.experimental.tasks.getTask(longId);
  try {
    await client.experimental.tasks.cancelTask(longId);
    report.cancel_again = null;
  } catch (e) {
    report.cancel_again = brief(e);
  }
  for (let i = 0; i < 100; i++) {
    const info = await client.callTool({ name: 'model_info', arguments: {} });
    report.unfinished_after_cancel = info.structuredContent.engine_unfinished_requests;
    if (report.unfinished_after_cancel === 0) break;
    await sleep(100);
  }

  report.listed = (await client.experimental.tasks.listTasks()).tasks.map((t) => t.taskId);
  report.ids = { chat: chatId, long: longId };
  // Both tasks have ended: their status notifications are sent (wait for them a while, no more).
  for (let i = 0; i < 100 && !(statusNotes.some((n) => n.taskId === chatId) && statusNotes.some((n) => n.taskId === longId)); i++) {
    await sleep(50);
  }
  report.status_notes = statusNotes;

  // 3. Another caller (HTTP, another token): the tasks are not there for it.
  if (scenario.other_token) {
    const other = await connect(scenario.other_token);
    try {
      try {
        await other.experimental.tasks.getTask(chatId);
        report.other_get = null;
      } catch (e) {
        report.other_get = brief(e);
      }
      report.other_listed = (await other.experimental.tasks.listTasks()).tasks.map((t) => t.taskId);
    } finally {
      await other.close();
    }
    // The owner again, on a new connection (a reconnect): its task is still there.
    const again = await connect(scenario.token);
    try {
      report.reconnected_result = await again.experimental.tasks.getTaskResult(chatId, CallToolResultSchema, TIMEOUT);
    } finally {
      await again.close();
    }
  }
} catch (e) {
  report.failure = brief(e);
} finally {
  await client.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
