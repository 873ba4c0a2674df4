// The README's curl examples, verbatim but for the port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';

let server;
// The README's generate and chat examples set no num_predict: a random-weight model rarely ends
// a sentence, so a small context bounds them (64 tokens) to keep the test short.
before(async () => { server = await startServer({ RESIDENT_CONTEXT_LENGTH: '64' }); });
after(async () => server?.stop());

test('README curl examples', () => {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'readme_curl.sh');
  const out = execFileSync('bash', [script], { env: { ...process.env, PORT: String(server.port) }, encoding: 'utf8' });
  assert.ok(out.split('\n').filter((l) => l === '200').length >= 5, out);
});
