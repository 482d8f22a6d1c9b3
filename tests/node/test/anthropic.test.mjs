// The npm `@anthropic-ai/sdk` client against a real `mimo serve` (random model: shapes, counts and errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { anthropic, model } from './common.mjs';

const hello = [{ role: 'user', content: 'Say hi.' }];
const stopReasons = ['end_turn', 'max_tokens', 'stop_sequence', 'tool_use'];

function checkUsage(usage) {
  assert.ok(Number.isInteger(usage.input_tokens) && usage.input_tokens >= 0, JSON.stringify(usage));
  assert.ok(Number.isInteger(usage.cache_read_input_tokens) && usage.cache_read_input_tokens >= 0, JSON.stringify(usage));
  assert.ok(Number.isInteger(usage.output_tokens), JSON.stringify(usage));
}

test('messages.create: a message with text blocks, a stop reason and usage', async () => {
  const message = await anthropic().messages.create({ model, max_tokens: 8, messages: hello, temperature: 0 });
  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.model, model);
  assert.match(message.id, /^msg_/);
  assert.ok(stopReasons.includes(message.stop_reason), message.stop_reason);
  assert.ok(message.content.every(b => ['text', 'thinking'].includes(b.type)));
  checkUsage(message.usage);
  assert.ok(message.usage.input_tokens + message.usage.cache_read_input_tokens > 0);
  assert.ok(message.usage.output_tokens >= 1 && message.usage.output_tokens <= 8);
  if (message.stop_reason === 'max_tokens') {
    assert.equal(message.usage.output_tokens, 8);
  }
});

test('messages.stream: message_start, ping, blocks (start, deltas, stop), message_delta, message_stop', async () => {
  const stream = anthropic().messages.stream({ model, max_tokens: 16, messages: hello, temperature: 0 });
  const events = [];
  for await (const event of stream) {
    events.push(event);
  }
  const final = await stream.finalMessage();
  const types = events.map(e => e.type);
  assert.equal(types[0], 'message_start');
  assert.deepEqual(types.slice(-2), ['message_delta', 'message_stop']);
  checkUsage(events[0].message.usage);
  assert.ok(events[0].message.usage.input_tokens + events[0].message.usage.cache_read_input_tokens > 0);
  // Blocks: each index opens once, gets only its own kind of deltas, and closes before the next opens.
  const deltaTypes = { text: ['text_delta'], thinking: ['thinking_delta', 'signature_delta'], tool_use: ['input_json_delta'] };
  let open = null;
  const seen = [];
  for (const event of events.slice(1, -2)) {
    switch (event.type) {
      case 'content_block_start':
        assert.equal(open, null, 'a block starts while another is open');
        assert.equal(event.index, seen.length);
        open = event.index;
        seen.push(event.content_block.type);
        break;
      case 'content_block_delta':
        assert.equal(event.index, open);
        assert.ok(deltaTypes[seen[open]].includes(event.delta.type), `${event.delta.type} in a ${seen[open]} block`);
        break;
      case 'content_block_stop':
        assert.equal(event.index, open);
        open = null;
        break;
      default:
        assert.ok(['ping'].includes(event.type), event.type);
    }
  }
  assert.equal(open, null);
  const delta = events.at(-2);
  assert.ok(stopReasons.includes(delta.delta.stop_reason));
  assert.equal(final.stop_reason, delta.delta.stop_reason);
  assert.equal(final.usage.output_tokens, delta.usage.output_tokens);
  assert.deepEqual(final.content.map(b => b.type), seen);
  const streamedText = events.filter(e => e.type === 'content_block_delta' && e.delta.type === 'text_delta').map(e => e.delta.text).join('');
  assert.equal(final.content.filter(b => b.type === 'text').map(b => b.text).join(''), streamedText);
});

test('a repeated prompt reads its prefix from the cache: cache_read_input_tokens in message_start and the end', async () => {
  const request = { model, max_tokens: 4, temperature: 0, system: 'You are a cache test. '.repeat(20), messages: hello };
  const cold = await anthropic().messages.create(request);
  const prompt = cold.usage.input_tokens + cold.usage.cache_read_input_tokens;
  const stream = anthropic().messages.stream(request);
  let start = null;
  for await (const event of stream) {
    start ??= event.type === 'message_start' ? event.message.usage : null;
  }
  const warm = await stream.finalMessage();
  assert.ok(start.cache_read_input_tokens > 0, JSON.stringify(start));
  assert.equal(start.input_tokens + start.cache_read_input_tokens, prompt);
  assert.equal(warm.usage.cache_read_input_tokens, start.cache_read_input_tokens);
  assert.equal(warm.usage.input_tokens, start.input_tokens);
});

test('messages.countTokens counts what messages.create is charged, system blocks included', async () => {
  const system = [{ type: 'text', text: 'You are terse.' }, { type: 'text', text: 'Answer in one word.', cache_control: { type: 'ephemeral' } }];
  const bare = await anthropic().messages.countTokens({ model, messages: hello });
  const withSystem = await anthropic().messages.countTokens({ model, system, messages: hello });
  assert.ok(bare.input_tokens > 0);
  assert.ok(withSystem.input_tokens > bare.input_tokens + 'You are terse.Answer in one word.'.length - 1);
  const message = await anthropic().messages.create({ model, system, messages: hello, max_tokens: 2 });
  assert.equal(message.usage.input_tokens + message.usage.cache_read_input_tokens, withSystem.input_tokens);
});

test("Claude Code's x-anthropic-billing-header line in system[0] is not part of the prompt", async () => {
  const rest = { type: 'text', text: 'You are a helper.' };
  const plain = await anthropic().messages.countTokens({ model, system: [rest], messages: hello });
  for (const header of ['x-anthropic-billing-header: cc_version=2.1.328.593; cc_entrypoint=sdk-cli;', 'x-anthropic-billing-header: cc_version=1;']) {
    const counted = await anthropic().messages.countTokens({ model, system: [{ type: 'text', text: header }, rest], messages: hello });
    assert.equal(counted.input_tokens, plain.input_tokens, header);
  }
});

const weather = { name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };

test('tools with tool_choice auto, any, tool and none are accepted; tool_use blocks are well formed', async () => {
  for (const toolChoice of [{ type: 'auto' }, { type: 'any' }, { type: 'tool', name: 'get_weather' }, { type: 'none' }]) {
    const message = await anthropic().messages.create({
      model, max_tokens: 60, temperature: 0, tools: [weather], tool_choice: toolChoice, messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    assert.ok(stopReasons.includes(message.stop_reason), `${toolChoice.type}: ${message.stop_reason}`);
    const uses = message.content.filter(b => b.type === 'tool_use');
    for (const use of uses) {
      assert.match(use.id, /^toolu_/);
      assert.equal(use.name, 'get_weather');
      assert.equal(typeof use.input, 'object');
    }
    assert.equal(message.stop_reason === 'tool_use', uses.length > 0, `${toolChoice.type}: ${JSON.stringify(message.content)}`);
    if (toolChoice.type === 'none') {
      assert.equal(uses.length, 0);
    }
  }
});

test('a history with tool_use, tool_result (string and blocks) and thinking is accepted, streamed', async () => {
  const stream = anthropic().messages.stream({
    model, max_tokens: 8, tools: [weather],
    messages: [
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant', content: [
          { type: 'thinking', thinking: 'Look both up.', signature: 'sig' },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Rome' } },
        ],
      },
      {
        role: 'user', content: [
          { type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' },
          { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: 'rain' }] },
        ],
      },
    ],
  });
  const final = await stream.finalMessage();
  assert.ok(stopReasons.includes(final.stop_reason));
  assert.ok(final.usage.input_tokens + final.usage.cache_read_input_tokens > 50);
});

test('beta.messages (?beta=true, anthropic-beta header) with thinking enabled and adaptive', async () => {
  for (const thinking of [{ type: 'enabled', budget_tokens: 1024 }, { type: 'adaptive' }, { type: 'disabled' }]) {
    const message = await anthropic().beta.messages.create({
      model, max_tokens: 8, messages: hello, thinking, betas: ['interleaved-thinking-2025-05-14', 'some-future-beta-2099-01-01'],
    });
    assert.ok(stopReasons.includes(message.stop_reason));
    for (const block of message.content.filter(b => b.type === 'thinking')) {
      assert.equal(typeof block.thinking, 'string');
      assert.equal(typeof block.signature, 'string');
    }
  }
});

async function rejects(promise, ErrorClass, status) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ErrorClass, `expected ${ErrorClass.name}, got ${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.status, status);
    assert.equal(error.error.type, 'error', 'the Anthropic error shape: {"type":"error","error":{...}}');
    assert.equal(typeof error.error.error.message, 'string');
    return error;
  }
  assert.fail(`expected ${ErrorClass.name}`);
}

test('bad requests are BadRequestErrors (invalid_request_error) that name the field', async () => {
  for (const [body, field] of [
    [{ model, messages: hello }, 'max_tokens'],
    [{ model, messages: hello, max_tokens: 0 }, 'max_tokens'],
    [{ model, messages: [], max_tokens: 4 }, 'messages'],
    [{ model, messages: hello, max_tokens: 4, temperature: 'hot' }, 'temperature'],
    [{ model, messages: hello, max_tokens: 4, tool_choice: { type: 'tool', name: 'nope' }, tools: [weather] }, 'tool_choice'],
  ]) {
    const error = await rejects(anthropic().messages.create(body), Anthropic.BadRequestError, 400);
    assert.equal(error.type, 'invalid_request_error');
    assert.match(error.error.error.message, new RegExp(field), JSON.stringify(error.error));
  }
  const counted = await rejects(anthropic().messages.countTokens({ model, messages: [{ role: 'user', content: 42 }] }), Anthropic.BadRequestError, 400);
  assert.match(counted.error.error.message, /messages\.0\.content/);
});

test('an unknown model is a NotFoundError (not_found_error) naming the served one', async () => {
  const error = await rejects(anthropic().messages.create({ model: 'claude-opus-5-5', max_tokens: 4, messages: hello }), Anthropic.NotFoundError, 404);
  assert.equal(error.type, 'not_found_error');
  assert.match(error.message, new RegExp(model));
});

test('a wrong API key is an AuthenticationError (authentication_error)', async () => {
  const error = await rejects(anthropic('sk-wrong').messages.create({ model, max_tokens: 4, messages: hello }), Anthropic.AuthenticationError, 401);
  assert.equal(error.type, 'authentication_error');
});

test('the x-api-key and the Bearer header both authenticate', async () => {
  const viaBearer = new Anthropic({ baseURL: anthropic().baseURL, authToken: process.env.MIMO_API_KEY, apiKey: null, maxRetries: 0 });
  const message = await viaBearer.messages.create({ model, max_tokens: 2, messages: hello });
  assert.equal(message.type, 'message');
});
