namespace MimoSharp.Runtime.Speculative;

/// <summary>How speculative steps went: tokens per verification and each head's acceptance.</summary>
public sealed class AcceptanceStats(int draftTokens)
{
    private readonly long[] _proposed = new long[Math.Max(draftTokens, 1)];
    private readonly long[] _accepted = new long[Math.Max(draftTokens, 1)];

    public int DraftTokens { get; } = draftTokens;
    /// <summary>Verification forwards (decode steps).</summary>
    public long Steps { get; private set; }
    /// <summary>Tokens committed by those steps (accepted drafts plus one bonus each).</summary>
    public long Tokens { get; private set; }

    /// <summary>Mean tokens committed per verification (1 without drafts; up to DraftTokens + 1).</summary>
    public double MeanAcceptanceLength => Steps == 0 ? 0 : (double)Tokens / Steps;

    /// <summary>Of the drafts head k proposed (only proposed when heads before it were accepted), the fraction accepted.</summary>
    public double HeadAcceptanceRate(int head) => _proposed[head] == 0 ? 0 : (double)_accepted[head] / _proposed[head];

    /// <summary>Drafts head k proposed, and of those accepted.</summary>
    public long Proposed(int head) => _proposed[head];
    public long Accepted(int head) => _accepted[head];

    public IReadOnlyList<double> HeadAcceptanceRates => Enumerable.Range(0, DraftTokens).Select(HeadAcceptanceRate).ToArray();

    internal void Record(int drafted, int accepted)
    {
        Steps++;
        Tokens += accepted + 1;
        // Head k's draft is judged only when every earlier draft was accepted.
        for (int k = 0; k < drafted && k <= accepted; k++)
        {
            _proposed[k]++;
            if (k < accepted)
            {
                _accepted[k]++;
            }
        }
    }
}
