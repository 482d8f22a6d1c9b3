using System.Diagnostics;
using System.Runtime.CompilerServices;
using MimoSharp.Models;
using MimoSharp.Runtime.Speculative;

namespace MimoSharp.Runtime.Generation;

/// <summary>
/// The generation API the CLI and the server share: a request in, an async stream of token events
/// out, ending with one final event that carries the finish reason, usage counts and timings.
/// Decoding runs on the thread pool; cancellation stops it between steps.
/// </summary>
public sealed class Generator(MimoModel model) : IGenerationEngine
{
    public MimoModel Model => model;

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (request.PromptIds.Count == 0)
        {
            throw new ArgumentException("the prompt holds no tokens; at least one is needed");
        }
        if (request.MaxTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(request), $"max_tokens must be 0 or more, got {request.MaxTokens}");
        }
        int limit = model.Config.MaxPositionEmbeddings;
        if (limit > 0 && (long)request.PromptIds.Count + request.MaxTokens > limit)
        {
            // As vLLM does: refuse up front rather than stop mid-answer.
            throw new ArgumentException(
                $"the prompt of {request.PromptIds.Count} tokens plus max_tokens {request.MaxTokens} exceeds the context of {limit} tokens (max_position_embeddings)");
        }
        int draftTokens = Math.Min(request.DraftTokens, model.MtpHeads);
        var session = new DecodingSession(model, request.Sampler, draftTokens, expectedLength: request.PromptIds.Count + request.MaxTokens);
        int[] prompt = request.PromptIds.ToArray();
        var emitted = new int[4];
        int produced = 0;
        TimeSpan prefillTime = TimeSpan.Zero;
        long decodeStart = 0;
        FinishReason finish = FinishReason.None;

        GenerationUsage Usage() => new(prompt.Length, produced, prefillTime,
            decodeStart == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(decodeStart),
            session.Stats.MeanAcceptanceLength, session.Stats.HeadAcceptanceRates);

        if (request.MaxTokens == 0)
        {
            yield return new GenerationEvent(-1, "", FinishReason.Length, Usage());
            yield break;
        }

        int count = await Task.Run(() =>
        {
            long start = Stopwatch.GetTimestamp();
            emitted[0] = session.Prefill(prompt);
            prefillTime = Stopwatch.GetElapsedTime(start);
            decodeStart = Stopwatch.GetTimestamp();
            return 1;
        }, cancellationToken).ConfigureAwait(false);

        while (true)
        {
            for (int i = 0; i < count && finish == FinishReason.None; i++)
            {
                int token = emitted[i];
                produced++;
                if (request.StopTokenIds.Contains(token))
                {
                    finish = FinishReason.Stop;
                    yield return new GenerationEvent(token, request.Text?.Flush() ?? "", FinishReason.None, null);
                    break;
                }
                string text = request.Text?.Push(token) ?? "";
                yield return new GenerationEvent(token, text, FinishReason.None, null);
                if (request.Text?.Stopped == true)
                {
                    finish = FinishReason.Stop;
                }
                else if (produced >= request.MaxTokens)
                {
                    finish = FinishReason.Length;
                }
            }
            if (finish == FinishReason.None && cancellationToken.IsCancellationRequested)
            {
                finish = FinishReason.Cancelled;
            }
            if (finish == FinishReason.None && limit > 0 && session.Cache.Length >= limit)
            {
                finish = FinishReason.ContextFull;
            }
            if (finish != FinishReason.None)
            {
                string tail = finish is FinishReason.Length or FinishReason.ContextFull or FinishReason.Cancelled ? request.Text?.Flush() ?? "" : "";
                yield return new GenerationEvent(-1, tail, finish, Usage());
                yield break;
            }
            count = await Task.Run(() => session.Step(emitted), CancellationToken.None).ConfigureAwait(false);
        }
    }
}
