// The npm `openai` client against a real `mimo serve` (random model: the text is noise, so these tests check
// shapes, counts, determinism and errors, never wording).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { openai, model, maxOutputTokens } from './common.mjs';

const user = [{ role: 'user', content: 'Say something.' }];
const finishReasons = ['stop', 'length', 'tool_calls'];

test('models.list names the served model', async () => {
  const page = await openai().models.list();
  assert.deepEqual(page.data.map(m => m.id), [model]);
});

test('chat.completions.create: one choice, usage that adds up, max_tokens honoured', async () => {
  const completion = await openai().chat.completions.create({ model, messages: user, max_tokens: 6, temperature: 0 });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.model, model);
  assert.equal(completion.choices.length, 1);
  const [choice] = completion.choices;
  assert.equal(choice.index, 0);
  assert.equal(choice.message.role, 'assistant');
  assert.equal(typeof choice.message.content, 'string');
  assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
  const usage = completion.usage;
  assert.ok(usage.prompt_tokens > 0);
  assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 6, `${usage.completion_tokens}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  if (choice.finish_reason === 'length') {
    assert.equal(usage.completion_tokens, 6);
  }
});

test('the same seed gives the same text; streamed and whole answers agree', async () => {
  const request = { model, messages: user, max_tokens: 12, temperature: 1, seed: 7 };
  const first = await openai().chat.completions.create(request);
  const second = await openai().chat.completions.create(request);
  assert.equal(second.choices[0].message.content, first.choices[0].message.content);
  const stream = await openai().chat.completions.create({ ...request, stream: true });
  let text = '';
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, first.choices[0].message.content);
});

test('streaming with stream_options.include_usage ends with a usage chunk with empty choices', async () => {
  const stream = await openai().chat.completions.create({
    model, messages: user, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }
  assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
  assert.ok(chunks.every(c => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.prompt_tokens > 0);
  assert.equal(typeof last.usage.prompt_tokens_details.cached_tokens, 'number');
  assert.ok(chunks.slice(0, -1).every(c => c.usage == null), 'only the last chunk carries usage');
  const finishes = chunks.flatMap(c => c.choices).filter(c => c.finish_reason != null);
  assert.equal(finishes.length, 1);
  assert.ok(['stop', 'length'].includes(finishes[0].finish_reason));
  const contentChunks = chunks.flatMap(c => c.choices).filter(c => c.delta?.content);
  assert.ok(contentChunks.length <= last.usage.completion_tokens);
  assert.ok(last.usage.completion_tokens <= 8);
});

test('the SDK stream helper (chat.completions.stream) assembles the final completion', async () => {
  const runner = openai().chat.completions.stream({ model, messages: user, max_tokens: 6, temperature: 0 });
  let deltas = '';
  runner.on('content', delta => { deltas += delta; });
  const completion = await runner.finalChatCompletion();
  assert.equal(completion.choices[0].message.content, deltas);
  assert.ok(['stop', 'length'].includes(completion.choices[0].finish_reason));
});

test('n: 3 gives three choices, indexed 0..2, streamed and not', async () => {
  const completion = await openai().chat.completions.create({ model, messages: user, max_tokens: 4, n: 3, temperature: 1, seed: 11 });
  assert.deepEqual(completion.choices.map(c => c.index), [0, 1, 2]);
  assert.ok(completion.choices.every(c => typeof c.message.content === 'string' && ['stop', 'length'].includes(c.finish_reason)));
  assert.ok(completion.usage.completion_tokens <= 12);
  const stream = await openai().chat.completions.create({ model, messages: user, max_tokens: 4, n: 3, temperature: 1, seed: 11, stream: true });
  const texts = ['', '', ''];
  const finished = new Set();
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      texts[c.index] += c.delta.content ?? '';
      if (c.finish_reason) {
        finished.add(c.index);
      }
    }
  }
  assert.deepEqual([...finished].sort(), [0, 1, 2]);
  assert.deepEqual(texts, completion.choices.map(c => c.message.content));
});

test('completions.create (legacy): text, usage, and a stream that matches it', async () => {
  const request = { model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 };
  const completion = await openai().completions.create(request);
  assert.equal(completion.object, 'text_completion');
  assert.equal(typeof completion.choices[0].text, 'string');
  assert.ok(['stop', 'length'].includes(completion.choices[0].finish_reason));
  assert.ok(completion.usage.prompt_tokens > 0 && completion.usage.completion_tokens <= 8);
  const stream = await openai().completions.create({ ...request, stream: true });
  let text = '';
  for await (const chunk of stream) {
    text += chunk.choices[0]?.text ?? '';
  }
  assert.equal(text, completion.choices[0].text);
});

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

function checkToolCalls(message) {
  for (const call of message.tool_calls ?? []) {
    assert.match(call.id, /\S/);
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.equal(typeof JSON.parse(call.function.arguments), 'object');
  }
}

test('tools with tool_choice auto, none, required and named are accepted', async () => {
  for (const toolChoice of ['auto', 'none', 'required', { type: 'function', function: { name: 'get_weather' } }]) {
    const completion = await openai().chat.completions.create({
      model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [weatherTool], tool_choice: toolChoice, max_tokens: 40, temperature: 0,
    });
    const [choice] = completion.choices;
    assert.ok(finishReasons.includes(choice.finish_reason), `${JSON.stringify(toolChoice)}: ${choice.finish_reason}`);
    checkToolCalls(choice.message);
    if (toolChoice === 'none') {
      assert.equal(choice.message.tool_calls, undefined);
    }
    if (choice.finish_reason === 'tool_calls') {
      assert.ok(choice.message.tool_calls.length >= 1);
    }
  }
});

test('streamed tool_choice required: every tool_calls delta is well formed', async () => {
  const stream = await openai().chat.completions.create({
    model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [weatherTool], tool_choice: 'required', max_tokens: 60, temperature: 0, stream: true,
  });
  const calls = new Map();
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      const indices = (c.delta.tool_calls ?? []).map(t => t.index);
      assert.equal(new Set(indices).size, indices.length, 'one entry per index per chunk');
      for (const t of c.delta.tool_calls ?? []) {
        if (!calls.has(t.index)) {
          // The first delta of a call names it and opens its arguments.
          assert.match(t.id, /\S/);
          assert.equal(t.type, 'function');
          assert.equal(t.function.name, 'get_weather');
          assert.equal(t.function.arguments, '');
          calls.set(t.index, '');
        } else {
          calls.set(t.index, calls.get(t.index) + (t.function?.arguments ?? ''));
        }
      }
      finish = c.finish_reason ?? finish;
    }
  }
  assert.ok(finishReasons.includes(finish), finish);
  if (finish === 'tool_calls') {
    assert.ok(calls.size >= 1);
    for (const args of calls.values()) {
      assert.equal(typeof JSON.parse(args), 'object');
    }
  }
});

test('a history with tool calls, tool results and reasoning is accepted', async () => {
  const completion = await openai().chat.completions.create({
    model,
    tools: [weatherTool],
    max_tokens: 8,
    messages: [
      { role: 'system', content: 'You help.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, reasoning_content: 'I should look it up.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      { role: 'user', content: 'And tomorrow?' },
    ],
  });
  assert.ok(completion.usage.prompt_tokens > 100);
  assert.ok(finishReasons.includes(completion.choices[0].finish_reason));
});

test('response_format json_schema: the answer parses and matches the schema', async () => {
  const schema = {
    type: 'object',
    properties: { ok: { type: 'boolean' }, color: { enum: ['red', 'green', 'blue'] } },
    required: ['ok', 'color'],
    additionalProperties: false,
  };
  const completion = await openai().chat.completions.create({
    model, messages: [{ role: 'user', content: 'Give me JSON' }], max_tokens: 100, temperature: 1, seed: 3,
    response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } },
  });
  const parsed = JSON.parse(completion.choices[0].message.content);
  assert.equal(typeof parsed.ok, 'boolean');
  assert.ok(['red', 'green', 'blue'].includes(parsed.color));
  assert.deepEqual(Object.keys(parsed).sort(), ['color', 'ok']);
  assert.equal(completion.choices[0].finish_reason, 'stop');
});

test('response_format json_object: every answer that ends parses as a JSON object', async () => {
  let ended = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const completion = await openai().chat.completions.create({
      model, messages: [{ role: 'user', content: 'Give me JSON' }], max_tokens: maxOutputTokens, temperature: 1, seed,
      response_format: { type: 'json_object' },
    });
    const [choice] = completion.choices;
    const text = choice.message.content;
    assert.ok(text.trimStart().startsWith('{'), text);
    if (choice.finish_reason === 'stop') {
      ended++;
      const parsed = JSON.parse(text);
      assert.equal(typeof parsed, 'object');
      assert.ok(parsed !== null && !Array.isArray(parsed), text);
    } else {
      assert.equal(choice.finish_reason, 'length');
    }
  }
  assert.ok(ended >= 1, 'at least one of six seeded answers closes its object within max_tokens');
});

test('logprobs with top_logprobs: one entry per token, alternatives sorted, greedy picks the best', async () => {
  const completion = await openai().chat.completions.create({
    model, messages: user, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const entries = completion.choices[0].logprobs.content;
  assert.equal(entries.length, completion.usage.completion_tokens);
  for (const entry of entries) {
    assert.equal(typeof entry.token, 'string');
    assert.ok(entry.logprob <= 0);
    assert.ok(Array.isArray(entry.bytes));
    assert.equal(entry.top_logprobs.length, 3);
    const values = entry.top_logprobs.map(t => t.logprob);
    assert.deepEqual(values, [...values].sort((a, b) => b - a));
    assert.ok(Math.abs(entry.logprob - values[0]) < 1e-4, 'greedy: the chosen token is the most likely');
  }
});

async function rejects(promise, ErrorClass, status) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ErrorClass, `expected ${ErrorClass.name}, got ${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.status, status);
    return error;
  }
  assert.fail(`expected ${ErrorClass.name}`);
}

test('a field of the wrong type is a BadRequestError in the OpenAI error shape naming the field', async () => {
  const error = await rejects(openai().chat.completions.create({ model, messages: user, temperature: 'hot' }), OpenAI.BadRequestError, 400);
  assert.equal(error.type, 'invalid_request_error');
  assert.equal(error.param, 'temperature');
  assert.match(error.message, /temperature/);
  assert.equal(typeof error.error.message, 'string');
});

test('out-of-range n, max_tokens 0 and empty messages are 400s naming the field', async () => {
  for (const [body, param] of [[{ n: 99 }, 'n'], [{ max_tokens: 0 }, 'max_tokens'], [{ messages: [] }, 'messages']]) {
    const error = await rejects(openai().chat.completions.create({ model, messages: user, ...body }), OpenAI.BadRequestError, 400);
    assert.equal(error.param, param, error.message);
  }
});

test('a missing model is a BadRequestError; an unknown one a NotFoundError (model_not_found)', async () => {
  const missing = await rejects(openai().chat.completions.create({ messages: user }), OpenAI.BadRequestError, 400);
  assert.equal(missing.param, 'model');
  const unknown = await rejects(openai().chat.completions.create({ model: 'gpt-4o', messages: user }), OpenAI.NotFoundError, 404);
  assert.equal(unknown.code, 'model_not_found');
  assert.match(unknown.message, new RegExp(model));
});

test('a wrong API key is an AuthenticationError (401, invalid_api_key)', async () => {
  const error = await rejects(openai('sk-wrong').chat.completions.create({ model, messages: user }), OpenAI.AuthenticationError, 401);
  assert.equal(error.code, 'invalid_api_key');
  await rejects(openai('sk-wrong').models.list(), OpenAI.AuthenticationError, 401);
});
