using System.Runtime.CompilerServices;
using MimoSharp.Models;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Sampling;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Server;

/// <summary>
/// Runs requests one at a time on <see cref="Generator"/> (a model runs one forward at a time), with a
/// bounded wait queue: the engine <c>mimo serve</c> uses until the batching scheduler replaces it.
/// It implements the seam's constraint and logprobs through the sampler: with either, the request
/// decodes without drafts, so every committed token passes through exactly one
/// <see cref="ITokenSampler.Probabilities"/> call whose history ends with the tokens committed before it.
/// </summary>
public sealed class SequentialEngine(MimoModel model, int maxQueued = 64, int? context = null) : IGenerationEngine
{
    private readonly Generator _generator = new(model);
    private readonly SemaphoreSlim _turn = new(1, 1);
    private int _waiting;
    private int _running;

    public MimoModel Model => model;

    public int Waiting => Volatile.Read(ref _waiting);

    public int Running => Volatile.Read(ref _running);

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int limit = context ?? model.Config.MaxPositionEmbeddings;
        if ((long)request.PromptIds.Count + request.MaxTokens > limit)
        {
            throw new ArgumentException(
                $"the prompt of {request.PromptIds.Count} tokens plus max_tokens {request.MaxTokens} exceeds the context of {limit} tokens");
        }
        if (Interlocked.Increment(ref _waiting) > maxQueued)
        {
            Interlocked.Decrement(ref _waiting);
            throw new EngineOverloadedException($"the server is busy: {maxQueued} requests are already waiting for the model; retry later");
        }
        try
        {
            await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
        Interlocked.Increment(ref _running);
        try
        {
            SamplerBridge? bridge = request.Constraint is not null || request.TopLogprobs is not null
                ? new SamplerBridge(request.Sampler, request.Constraint, request.PromptIds.Count, model.VocabSize)
                : null;
            GenerationRequest run = bridge is null ? request : request with { Sampler = bridge, DraftTokens = 0 };
            await foreach (GenerationEvent e in _generator.GenerateAsync(run, cancellationToken).ConfigureAwait(false))
            {
                yield return bridge is not null && request.TopLogprobs is int top && !e.IsFinal && e.Token >= 0
                    ? e with { Logprob = bridge.LogprobOf(e.Token, top) }
                    : e;
            }
        }
        finally
        {
            Interlocked.Decrement(ref _running);
            _turn.Release();
        }
    }

    /// <summary>Masks logits with the constraint and keeps each position's log-softmax for logprobs.</summary>
    private sealed class SamplerBridge(ITokenSampler inner, ITokenConstraint? constraint, int promptLength, int vocab) : ITokenSampler
    {
        private readonly float[] _masked = new float[vocab];
        private readonly float[] _logSoftmax = new float[vocab];
        // Rows past the tokenizer's vocabulary (padding) are never drawn; they take no probability here either.
        private readonly int _valid = inner is Sampler sampler ? sampler.ValidVocabSize : vocab;
        private int _seen = promptLength;

        public bool IsGreedy => inner.IsGreedy;

        public void Probabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs)
        {
            // Tokens committed since the last call (exactly one without drafts).
            for (; _seen < history.Length; _seen++)
            {
                constraint?.Accept(history[_seen]);
            }
            logits.CopyTo(_masked);
            constraint?.Apply(_masked);
            _masked.AsSpan(_valid).Fill(float.NegativeInfinity);
            float max = _masked[VectorMath.ArgMax(_masked)];
            double sum = 0;
            foreach (float x in _masked)
            {
                sum += Math.Exp(x - max);
            }
            float logZ = max + (float)Math.Log(sum);
            for (int i = 0; i < _masked.Length; i++)
            {
                _logSoftmax[i] = _masked[i] - logZ;
            }
            inner.Probabilities(_masked, history, probs);
        }

        public int Draw(ReadOnlySpan<float> probs) => inner.Draw(probs);

        public double NextUniform() => inner.NextUniform();

        public TokenLogprob LogprobOf(int token, int top)
        {
            var best = new List<(int Token, float Logprob)>(top);
            if (top > 0)
            {
                foreach (int id in Enumerable.Range(0, _valid).OrderByDescending(i => _logSoftmax[i]).Take(top))
                {
                    best.Add((id, _logSoftmax[id]));
                }
            }
            return new TokenLogprob(token, _logSoftmax[token], best);
        }
    }
}
