// Starts ONE real `mimo serve` for every node test file: builds (or reuses) the CLI, writes a random model
// and waits for GET /health == 200. run.mjs passes its URL to the tests through MIMO_BASE_URL.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const apiKey = 'sk-mimo-node-test';
export const modelName = 'mimo-node-test';
/** The server clamps every request's max_tokens to this (Claude Code asks for 32000 or more). */
export const maxOutputTokens = 128;

/** The built CLI: MIMO_DLL, else the Release build that `dotnet test MimoSharp.slnx -c Release` leaves, else a fresh build. */
export function mimoDll() {
  if (process.env.MIMO_DLL) {
    return process.env.MIMO_DLL;
  }
  const dll = path.join(repoRoot, 'src/MimoSharp.Cli/bin/Release/net10.0/mimo.dll');
  if (!fs.existsSync(dll)) {
    const build = spawnSync('dotnet', ['build', path.join(repoRoot, 'src/MimoSharp.Cli'), '-c', 'Release', '--nologo', '-v', 'q'], { stdio: 'inherit' });
    if (build.status !== 0 || !fs.existsSync(dll)) {
      throw new Error(`could not build ${dll}`);
    }
  }
  return dll;
}

function mimo(dll, args) {
  const result = spawnSync('dotnet', [dll, ...args], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`mimo ${args.join(' ')} exited ${result.status}: ${result.stdout}${result.stderr}`);
  }
  return result.stdout;
}

/** The tiny preset (6 layers, global and sliding attention, a 4,096-token context): the SDK tests' model. */
export function writeTinyModel(dll, dir) {
  const modelDir = path.join(dir, 'tiny');
  mimo(dll, ['create-random', '--preset', 'tiny', '--output', modelDir]);
  return modelDir;
}

/**
 * A random model that Claude Code's requests fit and that ends its turns: the tiny preset cut to 2 layers
 * (one dense, one MoE) with
 * - a 65,536-token context: Claude Code sends ~50k byte-level tokens (a dozen tools, a 7k-character system
 *   prompt);
 * - every layer sliding-window, so a 50k-token prefill takes about a second on 2 cores instead of the ~25 s
 *   that one global-attention layer costs (the SDK tests' model has global layers);
 * - eos_token_id = the 32 bytes that open 3- and 4-byte UTF-8 sequences (ids 224..255 of the byte-level
 *   tokenizer), so the random model ends its answer (end_turn) after some ten tokens. Claude Code reads
 *   stop_reason max_tokens as "the answer was cut" and asks to resume, and after three resumes reports an
 *   error, which a random model that never stops would always reach.
 */
export function writeClaudeCodeModel(dll, dir) {
  const configOnly = path.join(dir, 'claude-config');
  mimo(dll, ['create-random', '--preset', 'tiny', '--layers', '2', '--config-only', '--output', configOnly]);
  const config = JSON.parse(fs.readFileSync(path.join(configOnly, 'config.json'), 'utf8'));
  config.max_position_embeddings = 65536;
  config.hybrid_layer_pattern = config.hybrid_layer_pattern.map(() => 1);
  config.eos_token_id = Array.from({ length: 32 }, (_, i) => 224 + i);
  const configPath = path.join(dir, 'claude-config.json');
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
  const modelDir = path.join(dir, 'claude');
  mimo(dll, ['create-random', '--config', configPath, '--output', modelDir]);
  return modelDir;
}

/** Starts `mimo serve` on 127.0.0.1 and a free port over writeModel's model; resolves once /health answers 200. */
export async function startServer(writeModel) {
  const dll = mimoDll();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mimosharp-node-'));
  const modelDir = writeModel(dll, dir);
  const child = spawn('dotnet', [dll, 'serve', '--model', modelDir, '--host', '127.0.0.1', '--port', '0',
    '--api-key', apiKey, '--served-model-name', modelName, '--max-output-tokens', String(maxOutputTokens)],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  // Never outlive the test run, whatever ends it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  const logPath = path.join(dir, 'serve.log');
  const log = fs.createWriteStream(logPath);
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const port = await new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`mimo serve did not say where it listens within 60 s: ${text}`)), 60_000);
    child.stdout.on('data', chunk => {
      text += chunk;
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.on('exit', code => {
      clearTimeout(timer);
      reject(new Error(`mimo serve exited ${code}: ${text}`));
    });
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await fetch(`${baseUrl}/health`).then(r => r.status, () => 0);
    if (status === 200) {
      break;
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`GET /health still answers ${status} after 60 s`);
    }
    await new Promise(r => setTimeout(r, 100));
  }
  return {
    baseUrl,
    logPath,
    /**
     * Stops the server with `signal` (SIGKILL after 30 s without an exit) and resolves to how it exited;
     * removes its directory unless keepLog (then only the model goes).
     */
    async stop(keepLog = false, signal = 'SIGTERM') {
      const exited = new Promise(r => child.once('exit', (code, sig) => r({ code, signal: sig })));
      child.kill(signal);
      let timer;
      const exit = await Promise.race([exited, new Promise(r => { timer = setTimeout(r, 30_000); })]);
      clearTimeout(timer);
      if (exit === undefined) {
        child.kill('SIGKILL');
      }
      await new Promise(r => log.end(r));
      fs.rmSync(keepLog ? modelDir : dir, { recursive: true, force: true });
      return exit ?? await exited;
    },
  };
}
