using System.Text.Json;
using System.Text.Json.Nodes;

namespace MimoSharp.Tokenization;

/// <summary>
/// Writes a minimal tokenizer for random models: the 256 byte tokens of the byte-level alphabet (no
/// merges, so text is spelt byte by byte) and the ChatML / thinking control tokens, in the Hugging
/// Face tokenizer.json layout of the Qwen family. It lets every text command run on a random model.
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
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++)
        {
            vocab[ByteLevelAlphabet.ToChar((byte)b).ToString()] = b;
        }
        var added = new JsonArray();
        for (int i = 0; i < ControlTokens.Count; i++)
        {
            added.Add(new JsonObject
            {
                ["id"] = 256 + i,
                ["content"] = ControlTokens[i],
                ["single_word"] = false,
                ["lstrip"] = false,
                ["rstrip"] = false,
                ["normalized"] = false,
                ["special"] = i < 3,
            });
        }
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray
                {
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = QwenPattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
                },
            },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
        var options = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString(options));
        var config = new JsonObject
        {
            ["tokenizer_class"] = "Qwen2Tokenizer",
            ["eos_token"] = "<|im_end|>",
            ["pad_token"] = "<|endoftext|>",
            ["model_max_length"] = 262144,
        };
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(options));
    }
}
