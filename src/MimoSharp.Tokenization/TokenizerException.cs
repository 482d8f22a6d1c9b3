namespace MimoSharp.Tokenization;

/// <summary>A tokenizer file that is missing, malformed, or uses a feature this loader does not support.</summary>
public sealed class TokenizerException(string message, Exception? inner = null) : Exception(message, inner);
