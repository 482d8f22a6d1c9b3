using System.Diagnostics;
using System.Runtime.CompilerServices;
using MimoSharp.Models;
using MimoSharp.Runtime.Speculative;

namespace MimoSharp.Runtime.Generation;

/// <summary>
/// The generation API the CLI and the server share: a request in, an async stream of token events
/// out, ending with one final event that carries the finish reason, usage counts and timings.
/// One sequence per call, on the thread pool; cancellation stops it between steps. Calls may run
/// concurrently (the model is shared, each call has its own session), each at full width of the
/// kernel pool; <see cref="Scheduling.InferenceScheduler"/> batches them instead.
/// </summary>
public sealed class Generator(MimoModel model) : IGenerationEngine
{
    public MimoModel Model => model;

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int limit = model.Config.MaxPositionEmbeddings;
        GenerationOutput.Validate(request, limit);
        int draftTokens = Math.Min(request.DraftTokens, model.MtpHeads);
        var session = new DecodingSession(model, request.Sampler, draftTokens, expectedLength: request.PromptIds.Count + request.MaxTokens,
            constraint: request.Constraint, topLogprobs: request.TopLogprobs);
        int[] prompt = request.PromptIds.ToArray();
        var emitted = new int[4];
        var output = new GenerationOutput(request);
        TimeSpan prefillTime = TimeSpan.Zero;
        long decodeStart = 0;

        GenerationUsage Usage() => new(prompt.Length, output.Produced, prefillTime,
            decodeStart == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(decodeStart),
            session.Stats.MeanAcceptanceLength, session.Stats.HeadAcceptanceRates);

        if (request.MaxTokens == 0)
        {
            output.Finish = FinishReason.Length;
            yield return output.Final(Usage());
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
            for (int i = 0; i < count && output.Finish == FinishReason.None; i++)
            {
                yield return output.Token(emitted[i], session.Logprob(i));
            }
            if (output.Finish == FinishReason.None && cancellationToken.IsCancellationRequested)
            {
                output.Finish = FinishReason.Cancelled;
            }
            if (output.Finish == FinishReason.None && limit > 0 && session.Cache.Length >= limit)
            {
                output.Finish = FinishReason.ContextFull;
            }
            if (output.Finish != FinishReason.None)
            {
                yield return output.Final(Usage());
                yield break;
            }
            count = await Task.Run(() => session.Step(emitted), CancellationToken.None).ConfigureAwait(false);
        }
    }
}
