using MimoSharp.Models.Caching;

namespace MimoSharp.Models;

/// <summary>Which rows of a sequence's new tokens get logits.</summary>
public enum LogitRows
{
    /// <summary>Every new token (scoring, speculative verification).</summary>
    All,
    /// <summary>Only the last new token (prefill before generation).</summary>
    Last,
    None,
}

/// <summary>New tokens of one sequence, appended at its cache's next positions.</summary>
public readonly record struct SequenceInput(SequenceKvCache Cache, ReadOnlyMemory<int> Tokens, LogitRows Logits = LogitRows.All);

/// <summary>
/// Rows for one MTP head: at row t, the main model's pre-norm hidden state of position p_t and the
/// embedding of the token one place ahead of that head's target (spec §3.2). Rows are appended at the
/// head's own cache positions, which track the main model's.
/// </summary>
public readonly record struct MtpInput(SequenceKvCache Cache, ReadOnlyMemory<int> Tokens, ReadOnlyMemory<float> MainHidden, LogitRows Logits = LogitRows.All);
