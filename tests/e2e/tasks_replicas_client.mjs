// Tasks across two vllm-mcp replicas sharing one PostgreSQL store, through the TypeScript
// SDK's client (npm @modelcontextprotocol/sdk). Usage: node tasks_replicas_client.mjs NODE_TOOLS URL_A URL_B
// Creates tasks on replica A, polls, fetches and cancels them on replica B. Then it starts one
// more long task on A, prints {"kill": taskId} and waits for a line on stdin (the test kills A),
// then polls that task on B until it ends. Prints one JSON report as its last line.
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [, , tools, urlA, urlB] = process.argv;
const sdk = (rel) => import(pathToFileURL(join(tools, 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm', rel)).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { CallToolResultSchema } = await sdk('types.js');

async function connect(url) {
  const client = new Client({ name: 'vllm-mcp-replicas-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const brief = (e) => ({ code: e?.code ?? null, message: String(e?.message ?? e) });
const TIMEOUT = { timeout: 600_000 };
const LONG = { prompt: 'Once upon a time', max_tokens: 60_000, min_tokens: 60_000 };

async function create(client, name, args) {
  const stream = client.experimental.tasks.callToolStream({ name, arguments: args }, undefined, { task: { ttl: 300_000 }, ...TIMEOUT });
  const first = (await stream.next()).value;
  stream.return?.();
  return first.task.taskId;
}

async function untilGenerating(client, id) {
  for (let i = 0; i < 600; i++) {
    const task = await client.experimental.tasks.getTask(id);
    if ((task.statusMessage ?? '').startsWith('generating')) return task;
    await sleep(200);
  }
  throw new Error('never generating');
}

const report = {};
const a = await connect(urlA);
const b = await connect(urlB);
try {
  // Created on A, followed and fetched on B.
  const chat = await create(a, 'chat_completion', { messages: [{ role: 'user', content: 'Hello' }], max_tokens: 16, min_tokens: 16, seed: 2 });
  report.chat_on_b = await b.experimental.tasks.getTaskResult(chat, CallToolResultSchema, TIMEOUT);
  report.chat_get_on_b = await b.experimental.tasks.getTask(chat);

  // Generating on A, cancelled on B: A stops it (its engine request aborted).
  const long = await create(a, 'complete', LONG);
  report.long_seen_on_b = (await untilGenerating(b, long)).statusMessage;
  report.cancel_on_b = await b.experimental.tasks.cancelTask(long);
  for (let i = 0; i < 100; i++) {
    const info = await a.callTool({ name: 'model_info', arguments: {} });
    report.unfinished_on_a = info.structuredContent.engine_unfinished_requests;
    if (report.unfinished_on_a === 0) break;
    await sleep(100);
  }
  report.long_on_a = await a.experimental.tasks.getTask(long);
  report.tasks_on_a = (await a.callTool({ name: 'model_info', arguments: {} })).structuredContent.tasks;

  // Generating on A when A is killed: B reports it failed, never left working.
  const doomed = await create(a, 'complete', LONG);
  await untilGenerating(b, doomed);
  process.stdout.write(JSON.stringify({ kill: doomed }) + '\n');
  const lines = createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  lines.close();
  const started = Date.now();
  for (let i = 0; i < 600; i++) {
    const task = await b.experimental.tasks.getTask(doomed);
    report.doomed = task;
    if (task.status !== 'working') break;
    await sleep(500);
  }
  report.doomed_after_s = (Date.now() - started) / 1000;
} catch (e) {
  report.failure = brief(e);
} finally {
  await b.close();
  await a.close().catch(() => {});
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(0);
