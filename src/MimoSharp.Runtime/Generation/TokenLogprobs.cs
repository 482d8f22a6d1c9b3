namespace MimoSharp.Runtime.Generation;

/// <summary>
/// Log-probabilities for <see cref="GenerationRequest.TopLogprobs"/>: the "raw" kind (vLLM's default
/// <c>logprobs_mode</c>), log-softmax of the model's logits at the token's position, before penalties,
/// temperature, top-k/p, logit bias and any constraint. Raw values describe the model, and are the same
/// whether the token was drawn greedily, sampled, or accepted as an MTP draft.
/// </summary>
public static class TokenLogprobs
{
    /// <summary>OpenAI's bound on <c>top_logprobs</c>.</summary>
    public const int MaxTop = 20;

    /// <summary>The log-probability of <paramref name="token"/> and the <paramref name="top"/> most likely tokens under softmax(<paramref name="logits"/>).</summary>
    public static TokenLogprob FromLogits(ReadOnlySpan<float> logits, int token, int top)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(top, MaxTop);
        float max = float.NegativeInfinity;
        foreach (float x in logits)
        {
            max = MathF.Max(max, x);
        }
        double sum = 0;
        foreach (float x in logits)
        {
            sum += Math.Exp(x - max);
        }
        float logNormalizer = max + (float)Math.Log(sum);

        // The top entries by a bounded insertion: most logits fail the first comparison.
        top = Math.Min(top, logits.Length);
        Span<int> ids = stackalloc int[top];
        int held = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float x = logits[i];
            if (held == top && (top == 0 || !(x > logits[ids[held - 1]])))
            {
                continue;
            }
            int at = held < top ? held++ : held - 1;
            while (at > 0 && x > logits[ids[at - 1]])
            {
                ids[at] = ids[at - 1];
                at--;
            }
            ids[at] = i;
        }
        var alternatives = new (int Token, float Logprob)[held];
        for (int i = 0; i < held; i++)
        {
            alternatives[i] = (ids[i], logits[ids[i]] - logNormalizer);
        }
        return new TokenLogprob(token, logits[token] - logNormalizer, alternatives);
    }
}
