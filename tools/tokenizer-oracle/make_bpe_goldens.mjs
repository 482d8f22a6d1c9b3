// Oracle goldens for MimoSharp's BPE trainer (tests/MimoSharp.Tokenization.Tests/BpeTrainerTests.cs):
// 1. Trains Hugging Face's own BPE (npm `tokenizers`, the Rust library's Node binding) on
//    testdata/tokenizer/bpe-corpus.txt with the Qwen2 Split regex + ByteLevel, and writes every merge it
//    learns to testdata/tokenizer/bpe-hf-merges.json.gz. (Tokenizer.train(files) uses the model's default
//    trainer: vocabulary 30000, min frequency 0; on this corpus it runs out of pairs before that, so the
//    list is complete.)
// 2. Loads the tokenizer MimoSharp trained on the same corpus (testdata/tokenizer/trained, written by
//    `mimo train-tokenizer --input testdata/tokenizer/bpe-corpus.txt --by-line --vocab-size 2048
//    --output testdata/tokenizer/trained`) as it is, in Hugging Face's tokenizers and in transformers.js
//    (@lenml/tokenizers), encodes the parity texts with both (they must agree) and writes the ids and
//    HF's decodings to testdata/tokenizer/trained-parity.json.
// 3. Loads the byte-level tokenizer `mimo create-random` writes (testdata/tokenizer/byte-level, copied from
//    `mimo create-random --preset tiny`) in Hugging Face's tokenizers, and checks that it spells text byte by byte.
// Usage: cd tools/tokenizer-oracle && npm install && node make_bpe_goldens.mjs
import tokenizers from "tokenizers";
import { TokenizerLoader } from "@lenml/tokenizers";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { Tokenizer } = tokenizers;
const root = new URL("../../testdata/tokenizer/", import.meta.url).pathname;
const pattern = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
const untrained = {
  version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: { type: "NFC" },
  pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false }, byteLevel] },
  post_processor: byteLevel, decoder: byteLevel,
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: {}, merges: [] },
};

// 1. HF's merges.
const hf = Tokenizer.fromString(JSON.stringify(untrained));
hf.train([root + "bpe-corpus.txt"]);
const saved = join(tmpdir(), `hf-bpe-${process.pid}.json`);
hf.save(saved);
const merges = JSON.parse(readFileSync(saved, "utf8")).model.merges.map((m) => (Array.isArray(m) ? m : m.split(" ")));
writeFileSync(root + "bpe-hf-merges.json.gz", gzipSync(JSON.stringify({ oracle: "tokenizers 0.23.2 (npm)", corpus: "bpe-corpus.txt", by_line: true, merges })));
console.log(`HF learnt ${merges.length} merges`);

// 2. MimoSharp's trained tokenizer, loaded as it is.
const dir = root + "trained/";
const ours = Tokenizer.fromFile(dir + "tokenizer.json");
const js = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(readFileSync(dir + "tokenizer.json", "utf8")),
  tokenizerConfig: JSON.parse(readFileSync(dir + "tokenizer_config.json", "utf8")),
});
const texts = JSON.parse(readFileSync(root + "qwen3-parity.json", "utf8")).cases.map((c) => c.text);
texts.push(
  "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n<|im_start|>assistant\n<think>\n12 * 7 = 84\n</think>\n\n84<|im_end|>\n",
  "<tool_call>\n<function=calculator>\n<parameter=expression>\n(3 + 4) * 5\n</parameter>\n</function>\n</tool_call><|endoftext|>",
  "Beyond the BMP: 𝓗𝓮𝓵𝓵𝓸 world, x𝟙𝟚y, 𠀀𠀁 ok 👍🏽! 𝓤\",",
  "def heappush(heap, item):\n    \"\"\"Push item onto heap, maintaining the heap invariant.\"\"\"\n    heap.append(item)\n",
);
const cases = [];
for (const text of texts) {
  const encoding = await ours.encode(text, null, { addSpecialTokens: false });
  const ids = encoding.getIds();
  const jsIds = js.encode(text, { add_special_tokens: false });
  if (JSON.stringify(ids) !== JSON.stringify(jsIds)) {
    throw new Error(`tokenizers and transformers.js disagree on ${JSON.stringify(text.slice(0, 60))}:\n${ids}\n${jsIds}`);
  }
  cases.push({ text, ids, decoded: await ours.decode(ids, false) });
}
writeFileSync(root + "trained-parity.json", JSON.stringify({ oracles: ["tokenizers 0.23.2 (npm)", "@lenml/tokenizers 3.7.2 (transformers.js)"], tokenizer: "trained/", cases }, null, 1));
console.log(`wrote ${cases.length} cases; both oracles agree`);

// 3. The random models' byte-level tokenizer.
const bytes = Tokenizer.fromFile(root + "byte-level/tokenizer.json");
for (const text of texts.filter((t) => !t.includes("<|") && !t.includes("<t"))) {
  const ids = (await bytes.encode(text, null, { addSpecialTokens: false })).getIds();
  const expected = [...Buffer.from(text.normalize("NFC"), "utf8")];
  if (JSON.stringify(ids) !== JSON.stringify(expected)) throw new Error(`byte-level tokenizer: ids of ${JSON.stringify(text.slice(0, 40))} are not its UTF-8 bytes`);
  if ((await bytes.decode(ids, false)) !== text.normalize("NFC")) throw new Error("byte-level tokenizer: decode does not round-trip");
}
console.log("the byte-level tokenizer loads in HF tokenizers and spells text as its UTF-8 bytes");
