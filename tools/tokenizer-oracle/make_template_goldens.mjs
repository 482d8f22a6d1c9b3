// Writes testdata/tokenizer/qwen3-template-cases.json: conversations rendered with the Qwen3 chat
// template by @huggingface/jinja (the Jinja engine of transformers.js), the oracle for MimoSharp's
// template interpreter. Usage: cd tools/tokenizer-oracle && npm install && node make_template_goldens.mjs
import { Template } from "@huggingface/jinja";
import { readFileSync, writeFileSync } from "node:fs";

const root = new URL("../../testdata/tokenizer/", import.meta.url).pathname;
const config = JSON.parse(readFileSync(root + "qwen3/tokenizer_config.json", "utf8"));
const template = new Template(config.chat_template);

const tools = [
  { type: "function", function: { name: "get_weather", description: "Weather for a city", parameters: { type: "object", properties: { city: { type: "string", description: "City name" }, days: { type: "integer" } }, required: ["city"] } } },
  { type: "function", function: { name: "search", description: "Web search", parameters: { type: "object", properties: { query: { type: "string" } } } } },
];
const conversations = {
  single_user: [{ role: "user", content: "Hello!" }],
  system_and_user: [{ role: "system", content: "You are MiMo, an AI assistant developed by Xiaomi." }, { role: "user", content: "What is 2+2?" }],
  several_turns: [
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello! How can I help?" },
    { role: "user", content: "Tell me a joke." },
    { role: "assistant", content: "<think>\nSomething short.\n</think>\n\nWhy did the chicken cross the road?" },
    { role: "user", content: "Why?" },
  ],
  reasoning_content_field: [
    { role: "user", content: "Q1" },
    { role: "assistant", content: "A1", reasoning_content: "thinking about Q1" },
    { role: "user", content: "Q2" },
  ],
  tool_calls_and_responses: [
    { role: "system", content: "Use tools when needed." },
    { role: "user", content: "Weather in Paris and Oslo?" },
    { role: "assistant", content: "", tool_calls: [
      { type: "function", function: { name: "get_weather", arguments: { city: "Paris", days: 2 } } },
      { type: "function", function: { name: "get_weather", arguments: "{\"city\": \"Oslo\"}" } },
    ] },
    { role: "tool", content: "{\"temp\": 18}" },
    { role: "tool", content: "{\"temp\": 9}" },
    { role: "assistant", content: "Paris is 18C, Oslo 9C." },
    { role: "user", content: "<tool_response>\nnot really\n</tool_response>" },
  ],
  unicode: [{ role: "user", content: "你好 👋 naïve — “quotes”" }],
};

const cases = [];
for (const [name, messages] of Object.entries(conversations)) {
  for (const withTools of [false, true]) {
    for (const thinking of [undefined, true, false]) {
      for (const addGenerationPrompt of [true, false]) {
        const vars = { messages, add_generation_prompt: addGenerationPrompt, bos_token: "", eos_token: "<|im_end|>" };
        if (withTools) vars.tools = tools;
        if (thinking !== undefined) vars.enable_thinking = thinking;
        cases.push({ name: `${name}${withTools ? "+tools" : ""}${thinking === undefined ? "" : thinking ? "+thinking" : "+no_thinking"}${addGenerationPrompt ? "+prompt" : ""}`, variables: vars, rendered: template.render(vars) });
      }
    }
  }
}
writeFileSync(root + "qwen3-template-cases.json", JSON.stringify({ engine: "@huggingface/jinja", cases }, null, 1));
console.log(`wrote ${cases.length} cases`);
