// ollama-js (the npm package `ollama`, pinned in package.json) against a real resident.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import { startServer } from './server.mjs';

let server, ollama;
before(async () => {
  server = await startServer();
  ollama = new Ollama({ host: server.url });
});
after(async () => server?.stop());

const options = { num_predict: 4, seed: 1 };

test('generate, whole and streamed', async () => {
  const r = await ollama.generate({ model: 'tiny', prompt: 'hello', options });
  assert.equal(r.done, true);
  assert.equal(r.eval_count, 4);
  assert.equal(typeof r.response, 'string');
  assert.ok(r.context.length > 0);
  let text = '';
  let last;
  for await (const part of await ollama.generate({ model: 'tiny', prompt: 'hello', options, stream: true })) {
    text += part.response;
    last = part;
  }
  assert.equal(last.done, true);
  assert.equal(last.done_reason, 'length');
  assert.equal(text, r.response);  // same seed, same text
});

test('chat, whole and streamed', async () => {
  const messages = [{ role: 'user', content: 'hi' }];
  const r = await ollama.chat({ model: 'tiny', messages, options });
  assert.equal(r.message.role, 'assistant');
  assert.equal(r.eval_count, 4);
  let text = '';
  for await (const part of await ollama.chat({ model: 'tiny', messages, options, stream: true })) {
    text += part.message.content;
  }
  assert.equal(text, r.message.content);
});

test('embed', async () => {
  const r = await ollama.embed({ model: 'tiny', input: ['hello', 'world'] });
  assert.equal(r.embeddings.length, 2);
  assert.equal(r.embeddings[0].length, 256);
  const legacy = await ollama.embeddings({ model: 'tiny', prompt: 'hello' });
  assert.equal(legacy.embedding.length, 256);
});

test('list, ps and version', async () => {
  const list = await ollama.list();
  const names = list.models.map((m) => m.name).sort();
  assert.deepEqual(names, ['demo:latest', 'tiny:latest']);
  await ollama.generate({ model: 'tiny', prompt: '', keep_alive: '10m' });
  const ps = await ollama.ps();
  assert.ok(ps.models.some((m) => m.name === 'tiny:latest'));
  assert.ok(new Date(ps.models[0].expires_at) > new Date());
  const v = await ollama.version();
  assert.match(v.version, /^\d+\.\d+\.\d+/);
});

test('show', async () => {
  const r = await ollama.show({ model: 'tiny' });
  assert.equal(typeof r.modelfile, 'string');
  assert.equal(r.details.format, 'gguf');
});

test('create, copy and delete', async () => {
  const progress = [];
  for await (const p of await ollama.create({
    model: 'made', from: 'tiny', system: 'You are terse.', parameters: { temperature: 0.1 }, stream: true,
  })) {
    progress.push(p.status);
  }
  assert.equal(progress.at(-1), 'success');
  const shown = await ollama.show({ model: 'made' });
  assert.equal(shown.system, 'You are terse.');
  assert.match(shown.parameters, /temperature\s+0\.1/);
  assert.equal((await ollama.copy({ source: 'made', destination: 'made-too' })).status, 'success');
  const r = await ollama.generate({ model: 'made-too', prompt: 'hi', options: { num_predict: 2 } });
  assert.equal(r.eval_count, 2);
  await ollama.delete({ model: 'made' });
  await ollama.delete({ model: 'made-too' });
  const names = (await ollama.list()).models.map((m) => m.name);
  assert.ok(!names.includes('made:latest') && !names.includes('made-too:latest'), names.join(','));
  await assert.rejects(ollama.show({ model: 'made' }), (e) => e.status_code === 404);
});

test('an unknown model is a ResponseError with status 404', async () => {
  await assert.rejects(ollama.generate({ model: 'ghost', prompt: 'x' }), (e) => {
    assert.equal(e.status_code, 404);
    assert.match(e.message, /not found/);
    return true;
  });
});
