namespace MimoSharp.Tokenization.Templates;

/// <summary>A chat template that does not parse, uses an unsupported construct, or raised an error while rendering.</summary>
public sealed class TemplateException(string message) : Exception(message);
