// What every test file shares: the server that run.mjs started (MIMO_BASE_URL) and SDK clients for it.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

export const baseUrl = process.env.MIMO_BASE_URL ?? (() => { throw new Error('run these tests with `node run.mjs` (it starts mimo serve)'); })();
export const apiKey = process.env.MIMO_API_KEY;
export const model = process.env.MIMO_MODEL;
export const maxOutputTokens = Number(process.env.MIMO_MAX_OUTPUT_TOKENS);

export function openai(key = apiKey) {
  return new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: key, maxRetries: 0, timeout: 120_000 });
}

export function anthropic(key = apiKey) {
  return new Anthropic({ baseURL: baseUrl, apiKey: key, maxRetries: 0, timeout: 120_000 });
}

/** mimo_requests_total{endpoint=PATH,status=STATUS} from GET /metrics of the server at url. */
export async function requestCount(endpoint, status = '200', url = baseUrl) {
  const text = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${apiKey}` } }).then(r => r.text());
  const line = text.split('\n').find(l => l.startsWith(`mimo_requests_total{endpoint="${endpoint}",status="${status}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}
