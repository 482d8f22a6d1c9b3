using MimoSharp.Tensors.Storage;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace MimoSharp.Tokenization;

/// <summary>
/// The Qwen2-family byte-level BPE tokenizer of a model directory (tokenizer.json, and
/// tokenizer_config.json for the EOS token and chat template), on top of Microsoft.ML.Tokenizers:
/// the file's vocabulary and merges, its Split pre-tokenizer regex, NFC when it declares it, and its
/// added tokens recognised in the text. Decoding maps ids back to their exact bytes.
/// </summary>
public sealed class MimoTokenizer
{
    /// <summary>GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex true.</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int> _added;
    private readonly Dictionary<int, string> _addedById;
    private readonly HashSet<int> _special;
    private readonly string?[] _vocabById; // byte-level spelling of each ordinary token
    private readonly byte[]?[] _bytes; // per id, lazily: the bytes the token stands for
    private bool _nfc;

    public int VocabularySize { get; }
    /// <summary>Ids that end a turn: the config's eos_token, and &lt;|im_end|&gt; / &lt;|endoftext|&gt; when present.</summary>
    public IReadOnlySet<int> EosIds { get; }
    /// <summary>The Jinja chat template the model ships, if any.</summary>
    public string? ChatTemplate { get; }

    private MimoTokenizer(BpeTokenizer bpe, Dictionary<string, int> vocab, Dictionary<string, int> added, HashSet<int> special, int vocabularySize, IReadOnlySet<int> eos, string? template)
    {
        _bpe = bpe;
        _vocabById = new string?[vocabularySize];
        foreach ((string token, int id) in vocab)
        {
            _vocabById[id] = token;
        }
        _added = added;
        _addedById = added.ToDictionary(p => p.Value, p => p.Key);
        _special = special;
        VocabularySize = vocabularySize;
        EosIds = eos;
        ChatTemplate = template;
        _bytes = new byte[]?[vocabularySize];
    }

    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, "tokenizer.json"));

    public static MimoTokenizer Load(string directory)
    {
        string path = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(path))
        {
            throw new TokenizerException($"{directory}: no tokenizer.json (a model directory needs its Hugging Face tokenizer files for text)");
        }
        try
        {
            return LoadFrom(directory, path);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException or IndexOutOfRangeException)
        {
            // A key missing or holding the wrong kind of value, deep in the file: name the file, not the runtime's view of it.
            throw new TokenizerException($"{path}: does not have the structure of a Hugging Face tokenizer.json (a required key is missing or holds the wrong kind of value)", ex);
        }
    }

    /// <summary>Token ids above this are refused (Qwen3's tokenizer has 151,669 ids): the tokenizer allocates per id.</summary>
    public const int MaxTokenId = (1 << 22) - 1;

    private static JsonDocument ParseJsonFile(string path, string what, long maxBytes)
    {
        string text = InputFile.ReadText(path, what, maxBytes, message => new TokenizerException(message));
        try
        {
            return JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException ex)
        {
            throw new TokenizerException($"{path}: invalid JSON: {InputFile.DescribeJsonError(ex)}", ex);
        }
    }

    private static MimoTokenizer LoadFrom(string directory, string path)
    {
        JsonDocument document = ParseJsonFile(path, "a tokenizer.json file", 1L << 30);
        using (document)
        {
            JsonElement root = document.RootElement;
            TokenizerException Unsupported(string what) => new($"{path}: {what} is not supported (expected a byte-level BPE tokenizer of the Qwen/GPT-2 family)");

            if (!root.TryGetProperty("model", out JsonElement model) || model.GetProperty("type").GetString() != "BPE")
            {
                throw Unsupported($"model type \"{(root.TryGetProperty("model", out JsonElement m) && m.TryGetProperty("type", out JsonElement t) ? t.GetString() : "?")}\"");
            }
            var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (JsonProperty entry in model.GetProperty("vocab").EnumerateObject())
            {
                vocab[entry.Name] = entry.Value.GetInt32();
            }
            var merges = new List<string>();
            if (model.TryGetProperty("merges", out JsonElement mergeList))
            {
                foreach (JsonElement merge in mergeList.EnumerateArray())
                {
                    merges.Add(merge.ValueKind == JsonValueKind.Array ? $"{merge[0].GetString()} {merge[1].GetString()}" : merge.GetString()!);
                }
            }

            var added = new Dictionary<string, int>(StringComparer.Ordinal);
            var special = new HashSet<int>();
            if (root.TryGetProperty("added_tokens", out JsonElement addedTokens))
            {
                foreach (JsonElement token in addedTokens.EnumerateArray())
                {
                    string content = token.GetProperty("content").GetString()!;
                    int id = token.GetProperty("id").GetInt32();
                    added[content] = id;
                    if (token.TryGetProperty("special", out JsonElement isSpecial) && isSpecial.GetBoolean())
                    {
                        special.Add(id);
                    }
                }
            }

            string pattern = PreTokenizerPattern(root, Unsupported);
            // NFC is applied by Encode itself, once over the whole text (string.Normalize needs ICU:
            // the projects must not run in invariant-globalization mode, where it does nothing).
            bool nfc = root.TryGetProperty("normalizer", out JsonElement norm) && norm.ValueKind == JsonValueKind.Object && IsNfc(norm, Unsupported);

            var options = new BpeOptions(vocab)
            {
                Merges = merges,
                SpecialTokens = added,
                // Qwen2's pattern is scanned by code point (Regex would miss letters and digits outside the BMP); any other pattern runs as a Regex.
                PreTokenizer = pattern == ByteLevelTokenizerWriter.QwenPattern ? new QwenPreTokenizer(added) : new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), added),
                ByteLevel = true,
            };
            BpeTokenizer bpe = BpeTokenizer.Create(options);
            foreach ((string token, int id) in vocab.Concat(added))
            {
                if (id is < 0 or > MaxTokenId)
                {
                    throw new TokenizerException($"{path}: token \"{token}\" has id {id}; expected an id in 0..{MaxTokenId}");
                }
            }
            int size = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Values.Max() + 1);

            (HashSet<int> eos, string? template) = ReadConfig(directory, added);
            return new MimoTokenizer(bpe, vocab, added, special, size, eos, template) { _nfc = nfc };
        }
    }

    private static string PreTokenizerPattern(JsonElement root, Func<string, TokenizerException> unsupported)
    {
        if (!root.TryGetProperty("pre_tokenizer", out JsonElement pre) || pre.ValueKind != JsonValueKind.Object)
        {
            throw unsupported("a missing pre_tokenizer");
        }
        IEnumerable<JsonElement> steps = pre.GetProperty("type").GetString() == "Sequence" ? pre.GetProperty("pretokenizers").EnumerateArray() : [pre];
        string? pattern = null;
        foreach (JsonElement step in steps)
        {
            switch (step.GetProperty("type").GetString())
            {
                case "Split":
                    if (pattern is not null)
                    {
                        throw unsupported("more than one Split pre-tokenizer");
                    }
                    JsonElement p = step.GetProperty("pattern");
                    pattern = p.TryGetProperty("Regex", out JsonElement regex) ? regex.GetString() : Regex.Escape(p.GetProperty("String").GetString()!);
                    string behavior = step.TryGetProperty("behavior", out JsonElement b) ? b.GetString()! : "Isolated";
                    if (behavior != "Isolated")
                    {
                        throw unsupported($"Split behavior \"{behavior}\"");
                    }
                    break;
                case "ByteLevel":
                    if (step.TryGetProperty("use_regex", out JsonElement useRegex) && useRegex.GetBoolean())
                    {
                        pattern ??= Gpt2Pattern;
                    }
                    if (step.TryGetProperty("add_prefix_space", out JsonElement prefix) && prefix.GetBoolean())
                    {
                        throw unsupported("ByteLevel add_prefix_space");
                    }
                    break;
                default:
                    throw unsupported($"pre-tokenizer \"{step.GetProperty("type").GetString()}\"");
            }
        }
        return pattern ?? throw unsupported("a pre-tokenizer without a split pattern");
    }

    private static bool IsNfc(JsonElement norm, Func<string, TokenizerException> unsupported) => norm.GetProperty("type").GetString() switch
    {
        "NFC" => true,
        "Sequence" when norm.GetProperty("normalizers").GetArrayLength() == 0 => false,
        string type => throw unsupported($"normalizer \"{type}\""),
        null => false,
    };

    private static (HashSet<int> Eos, string? Template) ReadConfig(string directory, Dictionary<string, int> added)
    {
        var eos = new HashSet<int>();
        foreach (string name in new[] { "<|im_end|>", "<|endoftext|>" })
        {
            if (added.TryGetValue(name, out int id))
            {
                eos.Add(id);
            }
        }
        string? template = null;
        string configPath = Path.Combine(directory, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            using JsonDocument config = ParseJsonFile(configPath, "a tokenizer_config.json file", 64L << 20);
            if (config.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new TokenizerException($"{configPath}: holds a JSON {config.RootElement.ValueKind.ToString().ToLowerInvariant()}; expected an object");
            }
            if (config.RootElement.TryGetProperty("eos_token", out JsonElement eosToken))
            {
                string? content = eosToken.ValueKind == JsonValueKind.String ? eosToken.GetString()
                    : eosToken.ValueKind == JsonValueKind.Object && eosToken.TryGetProperty("content", out JsonElement c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
                if (content is not null && added.TryGetValue(content, out int id))
                {
                    eos.Add(id);
                }
            }
            if (config.RootElement.TryGetProperty("chat_template", out JsonElement t) && t.ValueKind == JsonValueKind.String)
            {
                template = t.GetString();
            }
        }
        string templatePath = Path.Combine(directory, "chat_template.jinja");
        if (File.Exists(templatePath))
        {
            template = InputFile.ReadText(templatePath, "a chat_template.jinja file", 16L << 20, message => new TokenizerException(message));
        }
        return (eos, template);
    }

    /// <summary>Ids of <paramref name="text"/>; added tokens written in the text (such as &lt;|im_start|&gt;) become their ids.</summary>
    public IReadOnlyList<int> Encode(string text) =>
        // Added tokens are ASCII, so NFC over the whole text equals NFC over the pieces between them.
        _bpe.EncodeToIds(_nfc ? text.Normalize(NormalizationForm.FormC) : text, considerPreTokenization: true, considerNormalization: false);

    public bool IsSpecial(int id) => _special.Contains(id);

    public int? TokenToId(string token) => _added.TryGetValue(token, out int id) ? id : _bpe.Vocabulary.TryGetValue(token, out int v) ? v : null;

    /// <summary>The vocabulary spelling of an id (byte-level alphabet for ordinary tokens).</summary>
    public string? IdToToken(int id) => _addedById.TryGetValue(id, out string? content) ? content : (uint)id < (uint)_vocabById.Length ? _vocabById[id] : null;

    /// <summary>The exact bytes an id stands for.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id)
    {
        if ((uint)id >= (uint)_bytes.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the tokenizer's vocabulary [0, {_bytes.Length})");
        }
        if (_bytes[id] is { } cached)
        {
            return cached;
        }
        byte[] bytes;
        if (_addedById.TryGetValue(id, out string? content))
        {
            bytes = Encoding.UTF8.GetBytes(content);
        }
        else if (_vocabById[id] is string token && ByteLevelAlphabet.TryToBytes(token, out byte[] decoded))
        {
            bytes = decoded;
        }
        else
        {
            bytes = [];
        }
        _bytes[id] = bytes;
        return bytes;
    }

    /// <summary>Text of ids (invalid UTF-8 becomes U+FFFD, as Hugging Face decodes); special tokens dropped when asked.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (skipSpecialTokens && _special.Contains(id))
            {
                continue;
            }
            foreach (byte b in TokenBytes(id))
            {
                bytes.Add(b);
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
