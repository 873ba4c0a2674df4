// openai-node (the npm package `openai`, pinned in package.json) against a real resident's /v1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, weather } from './server.mjs';

let server, client;
before(async () => {
  server = await startServer();
  client = new OpenAI({ baseURL: server.url + '/v1', apiKey: 'resident', maxRetries: 0 });
});
after(async () => server?.stop());

const messages = [{ role: 'user', content: 'hi' }];

test('chat completions, whole', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 4, seed: 3 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 4);
});

test('chat completions, streamed with usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'tiny', messages, max_tokens: 4, seed: 3, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage;
  let finish;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices[0]?.delta?.content) text += chunk.choices[0].delta.content;
    if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 4);
  const whole = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 4, seed: 3 });
  assert.equal(text, whole.choices[0].message.content);
});

test('completions and embeddings', async () => {
  const c = await client.completions.create({ model: 'tiny', prompt: 'Once', max_tokens: 3 });
  assert.equal(c.usage.completion_tokens, 3);
  const e = await client.embeddings.create({ model: 'tiny', input: ['a', 'b'] });  // base64 on the wire
  assert.equal(e.data.length, 2);
  assert.equal(e.data[0].embedding.length, 256);
});

test('models list and retrieve', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['demo:latest', 'tiny:latest']);
  const one = await client.models.retrieve('tiny:latest');
  assert.equal(one.id, 'tiny:latest');
});

test('an unknown model is a NotFoundError', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'ghost', messages }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, String(e));
    assert.equal(e.status, 404);
    return true;
  });
});

// Tools with a real model's template on random weights (issue 15): tool_choice "required" makes
// the chat layer's grammar force a call, which comes back as tool_calls with JSON arguments.

test('tools: a required call, whole and streamed; no tools is a BadRequestError', async () => {
  const s = await startServer({}, { qwen: { template: 'qwen2.5' } });
  try {
    const c = new OpenAI({ baseURL: s.url + '/v1', apiKey: 'resident', maxRetries: 0 });
    const request = {
      model: 'qwen', messages: [{ role: 'user', content: 'weather?' }], tools: [weather], tool_choice: 'required',
      parallel_tool_calls: false, max_tokens: 300, seed: 3,
    };
    const r = await c.chat.completions.create(request);
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const call = r.choices[0].message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.ok(['celsius', 'fahrenheit'].includes(JSON.parse(call.function.arguments).unit), call.function.arguments);

    // Streamed, through the SDK's own accumulation of deltas.
    const stream = c.chat.completions.stream(request);
    const final = await stream.finalChatCompletion();
    const streamed = final.choices[0].message.tool_calls[0];
    assert.equal(streamed.function.name, 'get_weather');
    assert.ok(['celsius', 'fahrenheit'].includes(JSON.parse(streamed.function.arguments).unit));
    assert.equal(final.choices[0].finish_reason, 'tool_calls');

    // A named function.
    const named = await c.chat.completions.create({
      ...request, tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    assert.equal(named.choices[0].message.tool_calls[0].function.name, 'get_weather');

    await assert.rejects(c.chat.completions.create({ ...request, model: 'tiny' }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.match(e.message, /registry\.ollama\.ai\/library\/tiny:latest does not support tools/);
      return true;
    });
  } finally {
    await s.stop();
  }
});

// Thinking through openai-node (issue 15): a model whose template thinks answers its thinking
// in `reasoning` (Ollama's OpenAI layer's name), reasoning_effort "none" turns it off, and an
// effort Ollama does not know is a BadRequestError with its words.
test('thinking: reasoning by default, none turns it off, an unknown effort is a BadRequestError', async () => {
  const s = await startServer({}, { r1: { template: 'deepseek-r1' } });
  try {
    const c = new OpenAI({ baseURL: s.url + '/v1', apiKey: 'resident', maxRetries: 0 });
    const request = { model: 'r1', messages: [{ role: 'user', content: '2+2?' }], max_tokens: 24 };
    // The first of three seeds whose draw has readable text (see tools_test.cc's DeepSeek test).
    let r;
    for (const seed of [1, 2, 3]) {
      r = await c.chat.completions.create({ ...request, seed });
      if (r.choices[0].message.reasoning?.length > 0) break;
    }
    assert.ok(r.choices[0].message.reasoning?.length > 0, JSON.stringify(r.choices[0].message));
    const off = await c.chat.completions.create({ ...request, reasoning_effort: 'none' });
    assert.equal(off.choices[0].message.reasoning, undefined, JSON.stringify(off.choices[0].message));
    await assert.rejects(c.chat.completions.create({ ...request, reasoning_effort: 'lots' }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.match(e.message, /invalid reasoning value: "lots"/);
      return true;
    });
  } finally {
    await s.stop();
  }
});
