using System.Text.Json;
using System.Text.Json.Nodes;

namespace MimoSharp.Tokenization;

/// <summary>
/// Writes byte-level BPE tokenizers in the Hugging Face tokenizer.json layout of the Qwen family: the
/// trained ones (<see cref="Training.TrainedTokenizer"/>) and a minimal one for random models (the 256
/// byte tokens, no merges, so text is spelt byte by byte, and the ChatML / thinking control tokens)
/// that lets every text command run on a random model.
/// </summary>
public static class ByteLevelTokenizerWriter
{
    /// <summary>Qwen2's pre-tokenizer pattern.</summary>
    public const string QwenPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static IReadOnlyList<string> ControlTokens { get; } = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>"];

    /// <summary>
    /// The tokenizer of <paramref name="directory"/>, or, when it has no tokenizer.json (random and
    /// test models), a byte-level one for its vocabulary. <paramref name="fallback"/> says which.
    /// </summary>
    public static MimoTokenizer LoadOrByteLevel(string directory, int vocabSize, out bool fallback)
    {
        fallback = !MimoTokenizer.Exists(directory);
        if (!fallback)
        {
            return MimoTokenizer.Load(directory);
        }
        string temp = Path.Combine(Path.GetTempPath(), $"mimosharp-bytes-{vocabSize}-{Environment.ProcessId}");
        Directory.CreateDirectory(temp);
        Write(temp, vocabSize);
        return MimoTokenizer.Load(temp);
    }

    public static void Write(string directory, int vocabSize)
    {
        int needed = 256 + ControlTokens.Count;
        if (vocabSize < needed)
        {
            throw new ArgumentException($"a byte-level tokenizer needs {needed} ids; the model's vocabulary has {vocabSize}");
        }
        string[] bytes = Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.ToChar((byte)b).ToString()).ToArray();
        var added = ControlTokens.Select((t, i) => new AddedToken(t, Special: i < 3)).ToArray();
        Write(directory, bytes, [], added, chatTemplate: null);
    }

    /// <summary>One added token: its text and whether it is special (skipped by decode(skip_special_tokens)).</summary>
    public readonly record struct AddedToken(string Content, bool Special);

    /// <summary>
    /// Writes tokenizer.json and tokenizer_config.json in the Qwen2 layout that Hugging Face's
    /// tokenizers, transformers.js and <see cref="MimoTokenizer"/> load: NFC, the Qwen2 Split regex then
    /// ByteLevel (no prefix space, no regex), a BPE model with <paramref name="tokens"/> as ids 0..n-1
    /// and <paramref name="merges"/> in rank order, <paramref name="added"/> as ids n.. and a ByteLevel
    /// decoder and post-processor with every field HF's deserializer asks for.
    /// </summary>
    public static void Write(string directory, IReadOnlyList<string> tokens, IReadOnlyList<(string Left, string Right)> merges, IReadOnlyList<AddedToken> added, string? chatTemplate)
    {
        var vocab = new JsonObject();
        for (int id = 0; id < tokens.Count; id++)
        {
            vocab[tokens[id]] = id;
        }
        var addedTokens = new JsonArray();
        var addedDecoder = new JsonObject();
        for (int i = 0; i < added.Count; i++)
        {
            var token = new JsonObject
            {
                ["id"] = tokens.Count + i,
                ["content"] = added[i].Content,
                ["single_word"] = false,
                ["lstrip"] = false,
                ["rstrip"] = false,
                ["normalized"] = false,
                ["special"] = added[i].Special,
            };
            addedTokens.Add(token);
            var entry = (JsonObject)token.DeepClone();
            entry.Remove("id");
            addedDecoder[(tokens.Count + i).ToString(System.Globalization.CultureInfo.InvariantCulture)] = entry;
        }
        var mergeArray = new JsonArray();
        foreach ((string left, string right) in merges)
        {
            mergeArray.Add(new JsonArray(left, right));
        }
        JsonObject ByteLevel() => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = addedTokens,
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray
                {
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = QwenPattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    ByteLevel(),
                },
            },
            ["post_processor"] = ByteLevel(),
            ["decoder"] = ByteLevel(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = mergeArray,
            },
        };
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString(options));
        var config = new JsonObject
        {
            ["add_bos_token"] = false,
            ["add_prefix_space"] = false,
            ["added_tokens_decoder"] = addedDecoder,
            ["bos_token"] = null,
            ["clean_up_tokenization_spaces"] = false,
            ["eos_token"] = "<|im_end|>",
            ["errors"] = "replace",
            ["model_max_length"] = 262144,
            ["pad_token"] = "<|endoftext|>",
            ["split_special_tokens"] = false,
            ["tokenizer_class"] = "Qwen2Tokenizer",
            ["unk_token"] = null,
        };
        if (chatTemplate is not null)
        {
            config["chat_template"] = chatTemplate;
        }
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(options));
    }
}
