// The README's curl examples, verbatim but for the port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => server?.stop());

test('README curl examples', () => {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'readme_curl.sh');
  const out = execFileSync('bash', [script], { env: { ...process.env, PORT: String(server.port) }, encoding: 'utf8' });
  assert.ok(out.split('\n').filter((l) => l === '200').length >= 5, out);
});
