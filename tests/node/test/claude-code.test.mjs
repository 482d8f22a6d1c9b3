// Claude Code itself (npm @anthropic-ai/claude-code ships the `claude` binary) pointed at `mimo serve` with
// ANTHROPIC_BASE_URL. Each request carries ~50k byte-level tokens (tools, a long system prompt,
// thinking: adaptive, max_tokens 32000+ that the server clamps with --max-output-tokens).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiKey, model, requestCount as countAt } from './common.mjs';

// The second server: its model has the long context and quick end of turn that Claude Code needs (server.mjs).
const baseUrl = process.env.MIMO_CLAUDE_BASE_URL;
const requestCount = (endpoint, status) => countAt(endpoint, status, baseUrl);

const nodeDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The native binary; where npm skipped the package's postinstall, bin/claude.exe is a stub and the wrapper finds the binary. */
function claudeCommand() {
  const bin = path.join(nodeDir, 'node_modules/@anthropic-ai/claude-code/bin/claude.exe');
  if (fs.existsSync(bin) && fs.statSync(bin).size > 1 << 20) {
    return [bin];
  }
  return [process.execPath, path.join(nodeDir, 'node_modules/@anthropic-ai/claude-code/cli-wrapper.cjs')];
}

// One HOME and project directory for every run, as a user working in one project has: Claude Code's system
// prompt names both (its memory path), so runs from elsewhere share a shorter prefix.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mimosharp-claude-'));
after(() => fs.rmSync(home, { recursive: true, force: true }));

/** Runs `claude ARGS` in the test HOME, against the Claude Code server, with no traffic elsewhere. */
function claude(args, { key = apiKey, timeoutMs = 120_000 } = {}) {
  const env = { PATH: process.env.PATH, HOME: home, TMPDIR: os.tmpdir(), LANG: 'C.UTF-8' };
  Object.assign(env, {
    ANTHROPIC_BASE_URL: baseUrl,
    ANTHROPIC_API_KEY: key,
    // Claude Code names Claude models by default; a local server serves one name.
    ANTHROPIC_MODEL: model,
    ANTHROPIC_DEFAULT_HAIKU_MODEL: model,
    ANTHROPIC_SMALL_FAST_MODEL: model,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    DISABLE_BUG_COMMAND: '1',
    CLAUDE_CODE_ENABLE_TELEMETRY: '0',
    // Fail at the first error (Claude Code retries even a 401 for minutes).
    CLAUDE_CODE_MAX_RETRIES: '0',
  });
  const [command, ...prefix] = claudeCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, ...args], { cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', c => { stdout += c; });
    child.stderr.on('data', c => { stderr += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

async function metric(name) {
  const text = await fetch(`${baseUrl}/metrics`, { headers: { 'x-api-key': apiKey } }).then(r => r.text());
  return Number(text.split('\n').find(l => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
}

test('claude -p --output-format json answers through mimo serve', async () => {
  const before = await requestCount('/v1/messages');
  const run = await claude(['-p', 'say hi', '--output-format', 'json']);
  assert.equal(run.code, 0, `exit ${run.code} ${run.signal ?? ''}\n${run.stdout}\n${run.stderr}`);
  const result = JSON.parse(run.stdout);
  assert.equal(result.type, 'result');
  assert.equal(result.subtype, 'success');
  assert.equal(result.is_error, false, run.stdout);
  assert.equal(typeof result.result, 'string');
  // Claude Code's whole request (system prompt, a dozen tools) reached the model.
  assert.ok(result.usage.input_tokens + result.usage.cache_read_input_tokens > 10_000, JSON.stringify(result.usage));
  assert.ok(result.usage.output_tokens >= 1);
  assert.ok(await requestCount('/v1/messages') >= before + result.num_turns, 'the server answered every turn');
});

test('claude -p --output-format stream-json: init, assistant messages, a successful result, cache reads as the server counted them', async () => {
  const cachedBefore = await metric('mimo_cached_prompt_tokens_total');
  const run = await claude(['-p', 'say hi again', '--output-format', 'stream-json', '--verbose']);
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  const lines = run.stdout.split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
  assert.equal(lines[0].type, 'system');
  assert.equal(lines[0].subtype, 'init');
  assert.equal(lines[0].model, model);
  // One line per assistant block that had visible output (a random model may end a turn at once).
  for (const assistant of lines.filter(l => l.type === 'assistant')) {
    assert.equal(assistant.message.model, model);
    assert.match(assistant.message.id, /^msg_/);
    assert.ok(assistant.message.content.every(b => ['text', 'thinking', 'tool_use'].includes(b.type)), JSON.stringify(assistant.message));
  }
  const result = lines.at(-1);
  assert.equal(result.type, 'result');
  assert.equal(result.is_error, false, JSON.stringify(result));
  assert.ok(result.usage.input_tokens + result.usage.cache_read_input_tokens > 10_000, JSON.stringify(result.usage));
  // Claude Code sums the usage of its turns: the cache reads it was told of are the ones the server counted.
  assert.equal(await metric('mimo_cached_prompt_tokens_total') - cachedBefore, result.usage.cache_read_input_tokens);
});

test('claude with a wrong API key fails with the 401 the server sent', async () => {
  const before = await requestCount('/v1/messages', '401');
  const run = await claude(['-p', 'say hi', '--output-format', 'json'], { key: 'sk-wrong' });
  assert.notEqual(run.code, 0);
  const result = JSON.parse(run.stdout);
  assert.equal(result.is_error, true);
  assert.equal(result.api_error_status, 401, run.stdout);
  assert.ok(await requestCount('/v1/messages', '401') > before);
});
