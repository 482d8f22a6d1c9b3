// `mimo serve` as a process: it stops in order on SIGTERM (docker stop, systemd) and SIGINT (Ctrl+C).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeTinyModel, apiKey } from '../server.mjs';

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`mimo serve exits with code 0 on ${signal}`, async () => {
    const server = await startServer(writeTinyModel);
    const models = await fetch(`${server.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(models.status, 200);
    // Exit code 0, not the SIGKILL that stop() sends when the server is still running after 30 s.
    assert.deepEqual(await server.stop(false, signal), { code: 0, signal: null });
    assert.equal(await fetch(`${server.baseUrl}/health`).then(r => r.status, () => 'refused'), 'refused');
  });
}
