// Writes testdata/tokenizer/trained-template-cases.json: conversations rendered by @huggingface/jinja with
// the chat template MimoSharp's trained tokenizers ship (testdata/tokenizer/trained/tokenizer_config.json):
// the oracle for ChatTemplate on that template (XML tool calls, <think> blocks, tool responses).
// Usage: cd tools/tokenizer-oracle && npm install && node make_trained_template_goldens.mjs
import { Template } from "@huggingface/jinja";
import { readFileSync, writeFileSync } from "node:fs";

const root = new URL("../../testdata/tokenizer/", import.meta.url).pathname;
const template = new Template(JSON.parse(readFileSync(root + "trained/tokenizer_config.json", "utf8")).chat_template);
const calculator = [{ type: "function", function: { name: "calculator", description: "Evaluate an arithmetic expression of integers with + - * / and parentheses.", parameters: { type: "object", properties: { expression: { type: "string", description: "The expression, e.g. (12 + 30) * 4" } }, required: ["expression"] } } }];
const weather = [{ type: "function", function: { name: "get_weather", description: "Weather", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" }, units: { type: "object" } } } } }];
const conversations = {
  single: [{ role: "user", content: "Hello!" }],
  system: [{ role: "system", content: "You are MiMo." }, { role: "user", content: "What is 2+2?" }],
  reasoning: [{ role: "user", content: "What is 17 * 23?" }, { role: "assistant", content: "391", reasoning_content: "17 * 23 = 340 + 51 = 391" }],
  inline_think: [{ role: "user", content: "Hi" }, { role: "assistant", content: "<think>\nbrief\n</think>\n\nHello." }, { role: "user", content: "Again" }],
  calculator: [
    { role: "user", content: "What is 4821 * 379?" },
    { role: "assistant", content: "", tool_calls: [{ type: "function", function: { name: "calculator", arguments: { expression: "4821 * 379" } } }] },
    { role: "tool", content: "1827159" },
    { role: "assistant", content: "4821 * 379 = 1827159." },
  ],
  calculator_call_only: [
    { role: "user", content: "Compute (125 + 37) * 12." },
    { role: "assistant", content: "", tool_calls: [{ type: "function", function: { name: "calculator", arguments: { expression: "(125 + 37) * 12" } } }] },
  ],
  typed_arguments: [
    { role: "system", content: "Use tools." },
    { role: "user", content: "Weather in Paris and Oslo?" },
    { role: "assistant", content: "Checking.", tool_calls: [
      { type: "function", function: { name: "get_weather", arguments: { city: "Paris", days: 2, units: { temp: "C" } } } },
      { type: "function", function: { name: "get_weather", arguments: { city: "Oslo" } } },
    ] },
    { role: "tool", content: "{\"temp\": 18}" },
    { role: "tool", content: "{\"temp\": 9}" },
    { role: "assistant", content: "Paris 18C, Oslo 9C." },
  ],
};
const cases = [];
for (const [name, messages] of Object.entries(conversations)) {
  const tools = name.startsWith("calculator") ? calculator : name === "typed_arguments" ? weather : undefined;
  for (const thinking of [undefined, true, false]) {
    for (const addGenerationPrompt of [true, false]) {
      const variables = { messages, add_generation_prompt: addGenerationPrompt };
      if (tools) variables.tools = tools;
      if (thinking !== undefined) variables.enable_thinking = thinking;
      cases.push({ name: `${name}${thinking === undefined ? "" : thinking ? "+thinking" : "+no_thinking"}${addGenerationPrompt ? "+prompt" : ""}`, variables, rendered: template.render(variables) });
    }
  }
}
writeFileSync(root + "trained-template-cases.json", JSON.stringify({ engine: "@huggingface/jinja", cases }, null, 1));
console.log(`wrote ${cases.length} cases`);
