namespace MimoSharp.Models.Configuration;

/// <summary>A config.json that is malformed, inconsistent, or asks for something MimoSharp does not implement.</summary>
public sealed class ModelConfigException(string message, Exception? inner = null) : Exception(message, inner);
