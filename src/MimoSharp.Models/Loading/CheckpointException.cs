namespace MimoSharp.Models.Loading;

/// <summary>A checkpoint file, header, index or tensor that is missing, malformed or inconsistent with the config.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);
