namespace MimoSharp.Tokenization;

/// <summary>
/// Splits streamed assistant text into reasoning (inside &lt;think&gt;…&lt;/think&gt;) and content.
/// Tags split across chunks are held back until they can be recognised.
/// </summary>
public sealed class ReasoningSplitter(bool startInReasoning = false)
{
    private const string Open = "<think>";
    private const string Close = "</think>";
    private string _pending = "";
    private bool _atStart = true;

    public bool InReasoning { get; private set; } = startInReasoning;

    /// <summary>Feeds text; returns the reasoning and content that are now certain.</summary>
    public (string Reasoning, string Content) Push(string text)
    {
        string all = _pending + text;
        _pending = "";
        if (_atStart && InReasoning)
        {
            // Started inside reasoning (the prompt opened it), but the model may still write <think>.
            string trimmed = all.TrimStart();
            if (trimmed.Length < Open.Length && Open.StartsWith(trimmed, StringComparison.Ordinal))
            {
                _pending = all; // too short to tell yet
                return ("", "");
            }
            if (trimmed.StartsWith(Open, StringComparison.Ordinal))
            {
                all = trimmed[Open.Length..];
            }
        }
        _atStart = false;
        var reasoning = new System.Text.StringBuilder();
        var content = new System.Text.StringBuilder();
        int i = 0;
        while (i < all.Length)
        {
            string tag = InReasoning ? Close : Open;
            int found = all.IndexOf(tag, i, StringComparison.Ordinal);
            if (found >= 0)
            {
                (InReasoning ? reasoning : content).Append(all, i, found - i);
                i = found + tag.Length;
                InReasoning = !InReasoning;
                continue;
            }
            // Hold back a tail that could be the start of the tag.
            int hold = 0;
            for (int length = Math.Min(tag.Length - 1, all.Length - i); length > 0; length--)
            {
                if (all.AsSpan(all.Length - length).SequenceEqual(tag.AsSpan(0, length)))
                {
                    hold = length;
                    break;
                }
            }
            (InReasoning ? reasoning : content).Append(all, i, all.Length - i - hold);
            _pending = all[^hold..];
            break;
        }
        return (reasoning.ToString(), content.ToString());
    }

    public (string Reasoning, string Content) Flush()
    {
        string rest = _pending;
        _pending = "";
        return InReasoning ? (rest, "") : ("", rest);
    }
}
