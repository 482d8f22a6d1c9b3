namespace MimoSharp.Runtime.Generation;

/// <summary>
/// Turns one request's committed tokens into events, the same way for every engine: a stop id ends
/// the answer (reported, not part of the text), the text stream may stop it on a stop string, and
/// max_tokens caps it. After <see cref="Finish"/> is set, further tokens are dropped by the caller.
/// </summary>
internal sealed class GenerationOutput(GenerationRequest request)
{
    /// <summary>Tokens turned into events so far.</summary>
    public int Produced { get; private set; }

    public FinishReason Finish { get; set; }

    public GenerationEvent Token(int token, TokenLogprob? logprob)
    {
        Produced++;
        if (request.StopTokenIds.Contains(token))
        {
            Finish = FinishReason.Stop;
            return new GenerationEvent(token, request.Text?.Flush() ?? "", FinishReason.None, null) { Logprob = logprob };
        }
        string text = request.Text?.Push(token) ?? "";
        if (request.Text?.Stopped == true)
        {
            Finish = FinishReason.Stop;
        }
        else if (Produced >= request.MaxTokens)
        {
            Finish = FinishReason.Length;
        }
        return new GenerationEvent(token, text, FinishReason.None, null) { Logprob = logprob };
    }

    /// <summary>The final event; text held back by the stream comes with it unless a stop ended the answer.</summary>
    public GenerationEvent Final(GenerationUsage usage)
    {
        string tail = Finish is FinishReason.Length or FinishReason.ContextFull or FinishReason.Cancelled ? request.Text?.Flush() ?? "" : "";
        return new GenerationEvent(-1, tail, Finish, usage);
    }

    /// <summary>The checks every engine makes before it admits a request.</summary>
    public static void Validate(GenerationRequest request, int contextLimit)
    {
        if (request.PromptIds.Count == 0)
        {
            throw new ArgumentException("the prompt holds no tokens; at least one is needed");
        }
        if (request.MaxTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(request), $"max_tokens must be 0 or more, got {request.MaxTokens}");
        }
        if (request.TopLogprobs is < 0 or > TokenLogprobs.MaxTop)
        {
            throw new ArgumentOutOfRangeException(nameof(request), $"top_logprobs must be 0..{TokenLogprobs.MaxTop}, got {request.TopLogprobs}");
        }
        if (contextLimit > 0 && (long)request.PromptIds.Count + request.MaxTokens > contextLimit)
        {
            // As vLLM does: refuse up front rather than stop mid-answer.
            throw new ArgumentException(
                $"the prompt of {request.PromptIds.Count} tokens plus max_tokens {request.MaxTokens} exceeds the context of {contextLimit} tokens (max_position_embeddings)");
        }
    }
}
