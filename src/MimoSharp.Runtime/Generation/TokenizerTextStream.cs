using MimoSharp.Tokenization;

namespace MimoSharp.Runtime.Generation;

/// <summary>An <see cref="ITextStream"/> over the model's tokenizer.</summary>
public sealed class TokenizerTextStream(MimoTokenizer tokenizer, IEnumerable<string>? stopStrings = null, bool skipSpecialTokens = true) : ITextStream
{
    private readonly StreamingDetokenizer _detokenizer = new(tokenizer, stopStrings, skipSpecialTokens);

    public bool Stopped => _detokenizer.Stopped;

    /// <summary>The stop string that ended the text, if one did.</summary>
    public string? MatchedStop => _detokenizer.MatchedStop;

    public string Push(int token) => _detokenizer.Push(token);

    public string Flush() => _detokenizer.Flush();
}
