// `node run.mjs [FILES]`: starts two `mimo serve` (server.mjs; one for the SDK tests, one for Claude Code, whose
// model needs a long context), runs test/*.test.mjs against them with node's own test runner, and ends with
// "node tests: N passed, N failed" for .ci/run to add to its total.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, writeTinyModel, writeClaudeCodeModel, apiKey, modelName, maxOutputTokens } from './server.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const files = process.argv.length > 2 ? process.argv.slice(2)
  : fs.readdirSync(path.join(here, 'test')).filter(f => f.endsWith('.test.mjs')).sort().map(f => path.join('test', f));

const started = await Promise.allSettled([startServer(writeTinyModel), startServer(writeClaudeCodeModel)]);
const failure = started.find(s => s.status === 'rejected');
if (failure) {
  await Promise.all(started.filter(s => s.status === 'fulfilled').map(s => s.value.stop()));
  console.error(`node tests: could not start mimo serve: ${failure.reason.message}`);
  console.log('node tests: 0 passed, 1 failed');
  process.exit(1);
}
const [server, claudeServer] = started.map(s => s.value);
const tap = path.join(path.dirname(server.logPath), 'results.tap');
const env = { ...process.env, MIMO_BASE_URL: server.baseUrl, MIMO_CLAUDE_BASE_URL: claudeServer.baseUrl, MIMO_API_KEY: apiKey, MIMO_MODEL: modelName, MIMO_MAX_OUTPUT_TOKENS: String(maxOutputTokens) };
const code = await new Promise(resolve => {
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...files], { cwd: here, env, stdio: 'inherit' });
  child.on('exit', c => resolve(c ?? 1));
});
const summary = fs.existsSync(tap) ? fs.readFileSync(tap, 'utf8') : '';
const count = name => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(summary)?.[1] ?? 0);
const passed = count('pass');
let failed = count('fail') + count('cancelled');
if (code !== 0 && failed === 0) {
  failed = 1;
}
await Promise.all([server.stop(failed > 0), claudeServer.stop(failed > 0)]);
if (failed > 0) {
  console.log(`node tests: server logs in ${server.logPath} and ${claudeServer.logPath}`);
}
console.log(`node tests: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
