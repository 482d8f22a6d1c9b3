using System.Reflection;

namespace MimoSharp.Tokenization.Training;

/// <summary>
/// A trained tokenizer as MimoSharp ships it: the learnt byte-level BPE vocabulary, then the ChatML,
/// thinking and tool-call control tokens (ids after the ordinary tokens, as in Qwen), and a MiMo-style
/// chat template (ChatML turns, &lt;think&gt; blocks, XML tool calls and &lt;tool_response&gt; turns).
/// </summary>
public static class TrainedTokenizer
{
    /// <summary>Added tokens in id order; the first three are special (decode can skip them).</summary>
    public static IReadOnlyList<ByteLevelTokenizerWriter.AddedToken> AddedTokens { get; } =
    [
        new("<|endoftext|>", true), new("<|im_start|>", true), new("<|im_end|>", true),
        new("<think>", false), new("</think>", false),
        new("<tool_call>", false), new("</tool_call>", false),
        new("<tool_response>", false), new("</tool_response>", false),
    ];

    /// <summary>The chat template written into tokenizer_config.json.</summary>
    public static string ChatTemplate { get; } = ReadTemplate();

    /// <summary>Learns merges so that ordinary plus added tokens make <paramref name="vocabSize"/> ids.</summary>
    public static BpeVocabulary Train(WordCounts words, int vocabSize)
    {
        int ordinary = vocabSize - AddedTokens.Count;
        if (ordinary < BpeTrainer.Alphabet.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabSize), $"the vocabulary size must be at least {BpeTrainer.Alphabet.Count + AddedTokens.Count} (256 byte tokens and {AddedTokens.Count} control tokens), got {vocabSize}");
        }
        return BpeTrainer.Train(words, ordinary);
    }

    /// <summary>Writes tokenizer.json and tokenizer_config.json (with the chat template) into <paramref name="directory"/>.</summary>
    public static void Write(string directory, BpeVocabulary vocabulary)
    {
        Directory.CreateDirectory(directory);
        ByteLevelTokenizerWriter.Write(directory, vocabulary.Tokens, vocabulary.Merges, AddedTokens, ChatTemplate);
    }

    private static string ReadTemplate()
    {
        using Stream stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("MimoSharp.Tokenization.Training.mimo_chat_template.jinja")
            ?? throw new InvalidOperationException("the chat template resource is missing from the assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
