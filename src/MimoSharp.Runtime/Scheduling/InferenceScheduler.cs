using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Layers;
using MimoSharp.Runtime.Generation;
using MimoSharp.Runtime.Speculative;

namespace MimoSharp.Runtime.Scheduling;

/// <summary>
/// Continuous batching over one shared model. One loop thread owns the forwards; each step it
/// 1. drops cancelled requests (their KV is freed before the next forward),
/// 2. admits queued requests while a running slot (<see cref="SchedulerOptions.MaxRunningSequences"/>)
///    and the KV budget allow, restoring a cached prompt prefix where one matches,
/// 3. runs every decoding sequence's MTP heads, one batched forward per head,
/// 4. runs ONE main forward over every running sequence: each decoding sequence's verify rows
///    [bonus, its own drafts], and prompt chunks of the prefilling ones under a token budget that keeps
///    the step short while others decode (chunked prefill),
/// 5. accepts drafts per sequence and streams the committed tokens to each request's reader.
/// Each sequence decodes exactly as a lone <see cref="DecodingSession"/> would: the batch changes
/// which rows share a forward, not what any row computes.
/// Admission: a request that could never fit (its KV need above the whole budget) gets
/// <see cref="RequestTooLargeException"/>, one that finds the queue full <see cref="EngineOverloadedException"/>
/// (retry later); otherwise it waits in the bounded queue.
/// </summary>
public sealed class InferenceScheduler : IGenerationEngine, IDisposable
{
    private const double Smoothing = 0.2; // weight of a new step time in the running means

    private readonly MimoModel _model;
    private readonly SchedulerOptions _options;
    private readonly Lock _lock = new();
    private readonly LinkedList<ScheduledSequence> _queue = new(); // under _lock
    private readonly List<ScheduledSequence> _running = []; // loop thread only
    private readonly AutoResetEvent _wake = new(false);
    private readonly Thread _loop;
    private readonly ForwardWorkspace _workspace = new();
    private readonly PrefixCache? _prefixCache;
    private readonly List<SequenceInput> _inputs = [];
    private readonly List<MtpInput> _mtpInputs = [];
    private readonly List<ScheduledSequence> _decoding = [];
    private readonly List<ScheduledSequence> _prefilling = [];
    private readonly AcceptanceStats _acceptance = new(DecodingSession.MaxDraftTokens);
    private readonly int[] _emitted = new int[DecodingSession.MaxDraftTokens + 1];
    private float[] _hidden = [];
    private float[] _logits = [];
    private volatile bool _disposed;
    private int _runningCount; // under _lock (the loop changes it; admission reads it)

    // Statistics (Interlocked or loop-written, read by Stats).
    private long _admitted, _finished, _cancelled, _rejected;
    private long _promptTokens, _cachedPromptTokens, _generatedTokens, _steps;
    private long _kvInUse, _kvReserved;
    private long _prefixHits, _prefixMisses;

    // Measured step costs (seconds) that size prompt chunks while others decode.
    private double _decodeStepSeconds;
    private double _promptTokenSeconds;

    public InferenceScheduler(MimoModel model, SchedulerOptions? options = null)
    {
        _model = model;
        _options = options ?? new SchedulerOptions();
        _options.Validate();
        if (_options.PrefixCache && _options.PrefixCacheBytes > 0)
        {
            _prefixCache = new PrefixCache(model, _options.PrefixCacheBytes);
        }
        MaxPositions = PositionsWithin(_options.KvBudgetBytes);
        _loop = new Thread(RunLoop) { IsBackground = true, Name = "mimo-scheduler" };
        _loop.Start();
    }

    public MimoModel Model => _model;
    public SchedulerOptions Options => _options;

    /// <summary>
    /// The most positions (prompt + max_tokens + drafts + 1) one sequence's KV cache may hold within the whole
    /// budget, at most the model's max_position_embeddings; 0 when not even one fits.
    /// </summary>
    public int MaxPositions { get; }

    /// <summary>
    /// The largest max_tokens a request with a prompt of <paramref name="promptTokens"/> tokens can be admitted with
    /// under the whole KV budget, whatever its drafts (0 or less: none); the positions are counted as <see cref="PositionsOf"/> does.
    /// </summary>
    public int MaxTokensWithin(int promptTokens) => MaxPositions - PositionsOf(promptTokens, 0, Math.Min(_options.MaxDraftTokens, _model.MtpHeads));

    /// <summary>Draft tokens a request of <paramref name="request"/>'s kind runs with (none under a constraint).</summary>
    private int DraftsFor(GenerationRequest request) =>
        request.Constraint is null ? Math.Clamp(Math.Min(request.DraftTokens, _options.MaxDraftTokens), 0, _model.MtpHeads) : 0;

    /// <summary>Positions a sequence's KV cache holds at most: the prompt, max_tokens, the drafts of a last step and the bonus token.</summary>
    private static int PositionsOf(int promptTokens, int maxTokens, int drafts) => promptTokens + maxTokens + drafts + 1;

    private int PositionsWithin(long budget)
    {
        // BytesFor grows with positions (global layers), so the largest fitting count is found by bisection.
        int lo = 0, hi = Math.Max(1, _model.Config.MaxPositionEmbeddings);
        while (lo < hi)
        {
            int mid = lo + (hi - lo + 1) / 2;
            if (SequenceKvCache.BytesFor(_model.Derived, _model.MtpHeads, _options.CacheReserve, mid) <= budget)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return lo;
    }

    /// <summary>A consistent-enough snapshot of the counters and gauges (each read atomically).</summary>
    public SchedulerStats Stats
    {
        get
        {
            int queued, running;
            lock (_lock)
            {
                queued = _queue.Count;
                running = _runningCount;
            }
            long[] proposed, accepted;
            lock (_acceptance)
            {
                proposed = Enumerable.Range(0, _model.MtpHeads).Select(k => k < DecodingSession.MaxDraftTokens ? _acceptance.Proposed(k) : 0).ToArray();
                accepted = Enumerable.Range(0, _model.MtpHeads).Select(k => k < DecodingSession.MaxDraftTokens ? _acceptance.Accepted(k) : 0).ToArray();
            }
            return new SchedulerStats
            {
                QueueDepth = queued,
                RunningSequences = running,
                MaxRunningSequences = _options.MaxRunningSequences,
                MaxQueuedRequests = _options.MaxQueuedRequests,
                RequestsAdmitted = Interlocked.Read(ref _admitted),
                RequestsFinished = Interlocked.Read(ref _finished),
                RequestsCancelled = Interlocked.Read(ref _cancelled),
                RequestsRejected = Interlocked.Read(ref _rejected),
                PromptTokens = Interlocked.Read(ref _promptTokens),
                CachedPromptTokens = Interlocked.Read(ref _cachedPromptTokens),
                GeneratedTokens = Interlocked.Read(ref _generatedTokens),
                Steps = Interlocked.Read(ref _steps),
                KvBytesInUse = Interlocked.Read(ref _kvInUse),
                KvBytesReserved = Interlocked.Read(ref _kvReserved),
                KvBudgetBytes = _options.KvBudgetBytes,
                PrefixCacheBytes = _prefixCache?.Bytes ?? 0,
                PrefixCacheBudgetBytes = _prefixCache is null ? 0 : _options.PrefixCacheBytes,
                PrefixCacheHits = Interlocked.Read(ref _prefixHits),
                PrefixCacheMisses = Interlocked.Read(ref _prefixMisses),
                MtpProposed = proposed,
                MtpAccepted = accepted,
            };
        }
    }

    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        GenerationOutput.Validate(request, _model.Config.MaxPositionEmbeddings);
        if (request.MaxTokens == 0)
        {
            var output = new GenerationOutput(request) { Finish = FinishReason.Length };
            yield return output.Final(new GenerationUsage(request.PromptIds.Count, 0, TimeSpan.Zero, TimeSpan.Zero, 0, []));
            yield break;
        }
        ScheduledSequence sequence = Enqueue(request);
        using CancellationTokenRegistration registration = cancellationToken.Register(() => Cancel(sequence));
        bool done = false;
        try
        {
            // Read without the token: a cancelled request still gets its final event (Cancelled, with usage) within a step.
            // Tokens the loop produced before it saw the cancellation (it can run many steps ahead of a slow
            // reader) are dropped: after cancelling, the caller gets only the final event.
            await foreach (GenerationEvent e in sequence.Events.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                done = e.IsFinal;
                if (!done && cancellationToken.IsCancellationRequested)
                {
                    continue;
                }
                yield return e;
            }
        }
        finally
        {
            if (!done)
            {
                Cancel(sequence); // the reader left early (client gone): free the sequence now
            }
        }
    }

    private void Cancel(ScheduledSequence sequence)
    {
        sequence.RequestCancel();
        _wake.Set();
    }

    private ScheduledSequence Enqueue(GenerationRequest request)
    {
        int drafts = DraftsFor(request);
        int positions = PositionsOf(request.PromptIds.Count, request.MaxTokens, drafts);
        long bytes = SequenceKvCache.BytesFor(_model.Derived, _model.MtpHeads, _options.CacheReserve, positions);
        if (bytes > _options.KvBudgetBytes)
        {
            Interlocked.Increment(ref _rejected);
            throw new RequestTooLargeException(
                $"the prompt of {request.PromptIds.Count} tokens plus max_tokens {request.MaxTokens} needs {bytes} bytes of KV cache, more than the whole KV budget of {_options.KvBudgetBytes} bytes (room for {MaxPositions} positions in all); lower max_tokens or raise the budget");
        }
        var sequence = new ScheduledSequence(request, request.PromptIds.ToArray(), drafts, positions, bytes);
        lock (_lock)
        {
            int freeSlots = Math.Max(0, _options.MaxRunningSequences - _runningCount);
            if (_queue.Count >= _options.MaxQueuedRequests + freeSlots)
            {
                Interlocked.Increment(ref _rejected);
                throw new EngineOverloadedException(
                    $"the engine is full: {_runningCount} of {_options.MaxRunningSequences} sequences running (--parallel) and {_queue.Count} of {_options.MaxQueuedRequests} requests queued; retry later");
            }
            _queue.AddLast(sequence);
        }
        _wake.Set();
        return sequence;
    }

    private void RunLoop()
    {
        while (!_disposed)
        {
            ReapCancelled();
            Admit();
            if (_running.Count == 0)
            {
                _wake.WaitOne(TimeSpan.FromSeconds(1));
                continue;
            }
            try
            {
                Step();
            }
            catch (Exception e)
            {
                // A failed forward leaves the batch's caches in an unknown state: end those requests with the error.
                foreach (ScheduledSequence sequence in _running.ToArray())
                {
                    Fail(sequence, new InvalidOperationException($"generation failed: {e.Message}", e));
                }
            }
        }
        var error = new ObjectDisposedException(nameof(InferenceScheduler), "the scheduler was disposed while the request was in flight");
        foreach (ScheduledSequence sequence in _running.ToArray())
        {
            Fail(sequence, error);
        }
        lock (_lock)
        {
            foreach (ScheduledSequence sequence in _queue)
            {
                sequence.Events.Writer.TryComplete(error);
            }
            _queue.Clear();
        }
    }

    private void ReapCancelled()
    {
        lock (_lock)
        {
            for (LinkedListNode<ScheduledSequence>? node = _queue.First; node is not null;)
            {
                LinkedListNode<ScheduledSequence>? next = node.Next;
                if (node.Value.CancelRequested)
                {
                    _queue.Remove(node);
                    Interlocked.Increment(ref _cancelled);
                    WriteFinal(node.Value, FinishReason.Cancelled);
                }
                node = next;
            }
        }
        for (int i = _running.Count - 1; i >= 0; i--)
        {
            ScheduledSequence sequence = _running[i];
            if (sequence.CancelRequested && !sequence.Completed)
            {
                Interlocked.Increment(ref _cancelled);
                End(sequence, FinishReason.Cancelled);
            }
        }
        UpdateKvInUse();
    }

    private void Admit()
    {
        while (true)
        {
            ScheduledSequence sequence;
            lock (_lock)
            {
                if (_queue.First is not { } head || _runningCount >= _options.MaxRunningSequences
                    || Interlocked.Read(ref _kvReserved) + head.Value.ReservedBytes > _options.KvBudgetBytes)
                {
                    return;
                }
                sequence = head.Value;
                _queue.RemoveFirst();
                _runningCount++;
            }
            Interlocked.Add(ref _kvReserved, sequence.ReservedBytes);
            _running.Add(sequence);
            try
            {
                Start(sequence);
            }
            catch (Exception e)
            {
                Fail(sequence, e);
            }
        }
    }

    /// <summary>Makes the sequence's cache (from the prefix cache where it can) and starts its prompt.</summary>
    private void Start(ScheduledSequence sequence)
    {
        GenerationRequest request = sequence.Request;
        sequence.AdmittedAt = Stopwatch.GetTimestamp();
        int[] prompt = sequence.Prompt;
        SequenceKvCache cache = _model.CreateCache(reserve: _options.CacheReserve,
            initialCapacity: Math.Min(sequence.Positions, prompt.Length + 256), positionLimit: sequence.Positions);
        int restored = 0;
        if (_prefixCache is not null)
        {
            restored = _prefixCache.TryRestore(prompt, sequence.DraftTokens, cache);
            Interlocked.Increment(ref restored > 0 ? ref _prefixHits : ref _prefixMisses);
        }
        var session = new DecodingSession(_model, request.Sampler, sequence.DraftTokens, request.Constraint, request.TopLogprobs, cache);
        if (restored > 0)
        {
            session.AdoptRestoredPrefix(prompt, restored);
        }
        session.BeginPrefill(prompt);
        sequence.Session = session;
        sequence.CachedPromptTokens = restored;
        Interlocked.Increment(ref _admitted);
        Interlocked.Add(ref _promptTokens, prompt.Length);
        Interlocked.Add(ref _cachedPromptTokens, restored);
    }

    private void Step()
    {
        long start = Stopwatch.GetTimestamp();
        int vocab = _model.VocabSize, h = _model.HiddenSize;
        _decoding.Clear();
        _prefilling.Clear();
        foreach (ScheduledSequence sequence in _running)
        {
            (sequence.Session!.IsPrefilled ? _decoding : _prefilling).Add(sequence);
        }

        // Drafts: head k over every sequence that drafts at least k + 1 tokens this step, one forward per head.
        int maxDrafts = 0;
        foreach (ScheduledSequence sequence in _decoding)
        {
            sequence.StepDrafts = sequence.Session!.BeginStep();
            maxDrafts = Math.Max(maxDrafts, sequence.StepDrafts);
        }
        for (int k = 0; k < maxDrafts; k++)
        {
            _mtpInputs.Clear();
            foreach (ScheduledSequence sequence in _decoding)
            {
                if (sequence.StepDrafts > k)
                {
                    _mtpInputs.Add(sequence.Session!.DraftInput(k));
                }
            }
            Span<float> headLogits = Grow(ref _logits, _mtpInputs.Count * vocab);
            _model.ForwardMtp(_workspace, k, CollectionsMarshal.AsSpan(_mtpInputs), headLogits);
            int row = 0;
            foreach (ScheduledSequence sequence in _decoding)
            {
                if (sequence.StepDrafts > k)
                {
                    sequence.Session!.SetDraft(k, headLogits.Slice(row++ * vocab, vocab));
                }
            }
        }

        // One main forward: verify rows of the decoding sequences, then prompt chunks under the budget.
        _inputs.Clear();
        int decodeRows = 0;
        foreach (ScheduledSequence sequence in _decoding)
        {
            _inputs.Add(sequence.Session!.VerifyInput());
            decodeRows += sequence.StepDrafts + 1;
        }
        int budget = PromptBudget(decodeRows > 0);
        int promptRows = 0;
        foreach (ScheduledSequence sequence in _prefilling)
        {
            sequence.StepPromptTokens = 0;
            if (budget - promptRows <= 0)
            {
                continue;
            }
            SequenceInput chunk = sequence.Session!.PromptChunk(budget - promptRows);
            sequence.StepPromptTokens = chunk.Tokens.Length;
            promptRows += chunk.Tokens.Length;
            _inputs.Add(chunk);
        }
        ReadOnlySpan<SequenceInput> inputs = CollectionsMarshal.AsSpan(_inputs);
        int rows = decodeRows + promptRows;
        Span<float> hidden = Grow(ref _hidden, rows * h);
        Span<float> logits = Grow(ref _logits, MimoModel.CountLogitRows(inputs) * vocab);
        _model.Forward(_workspace, inputs, hidden, logits);
        Interlocked.Increment(ref _steps);

        int hiddenRow = 0, logitRow = 0;
        foreach (ScheduledSequence sequence in _decoding)
        {
            int count = sequence.StepDrafts + 1;
            int committed = sequence.Session!.CompleteStep(logits.Slice(logitRow * vocab, count * vocab), hidden.Slice(hiddenRow * h, count * h), _emitted);
            hiddenRow += count;
            logitRow += count;
            lock (_acceptance)
            {
                _acceptance.Record(sequence.StepDrafts, committed - 1);
            }
            sequence.DecodeSteps++;
            if (sequence.DecodeSteps == 1 && _prefixCache is not null)
            {
                // The prompt's turn boundary: the heads have now run over the prompt too.
                _prefixCache.Store(sequence.Session);
            }
            Emit(sequence, committed);
        }
        foreach (ScheduledSequence sequence in _prefilling)
        {
            int count = sequence.StepPromptTokens;
            if (count == 0)
            {
                continue;
            }
            bool last = sequence.Session!.PromptRemaining == 0;
            int first = sequence.Session.CompletePromptChunk(count, hidden.Slice(hiddenRow * h, count * h),
                last ? logits.Slice(logitRow * vocab, vocab) : default);
            hiddenRow += count;
            if (last)
            {
                logitRow++;
                sequence.FirstTokenAt = Stopwatch.GetTimestamp();
                _emitted[0] = first;
                Emit(sequence, 1);
            }
        }
        UpdateKvInUse();
        LearnStepCost(Stopwatch.GetElapsedTime(start).TotalSeconds, decodeRows, promptRows);
    }

    /// <summary>Prompt tokens this step may run: all of the budget when nobody decodes, else what keeps the step near a decode step's length.</summary>
    private int PromptBudget(bool othersDecoding)
    {
        int max = _options.PrefillTokensPerStep;
        if (!othersDecoding || _decodeStepSeconds <= 0)
        {
            return max;
        }
        if (_promptTokenSeconds <= 0)
        {
            return Math.Min(max, 16);
        }
        double allowed = (_options.PrefillStallFactor - 1) * _decodeStepSeconds / _promptTokenSeconds;
        return (int)Math.Clamp(allowed, Math.Min(4, max), max);
    }

    private void LearnStepCost(double seconds, int decodeRows, int promptRows)
    {
        if (promptRows == 0)
        {
            _decodeStepSeconds = _decodeStepSeconds <= 0 ? seconds : _decodeStepSeconds + Smoothing * (seconds - _decodeStepSeconds);
        }
        else
        {
            double perToken = Math.Max(seconds - (decodeRows > 0 ? _decodeStepSeconds : 0), 0) / promptRows;
            _promptTokenSeconds = _promptTokenSeconds <= 0 ? perToken : _promptTokenSeconds + Smoothing * (perToken - _promptTokenSeconds);
        }
    }

    /// <summary>Streams the step's committed tokens to the reader and ends the request when a stop condition hits.</summary>
    private void Emit(ScheduledSequence sequence, int count)
    {
        DecodingSession session = sequence.Session!;
        int before = sequence.Output.Produced;
        for (int i = 0; i < count && sequence.Output.Finish == FinishReason.None; i++)
        {
            GenerationEvent e = sequence.Output.Token(_emitted[i], session.Logprob(i));
            sequence.Events.Writer.TryWrite(before == 0 && i == 0 ? e with { CachedPromptTokens = sequence.CachedPromptTokens } : e);
        }
        Interlocked.Add(ref _generatedTokens, sequence.Output.Produced - before);
        int limit = _model.Config.MaxPositionEmbeddings;
        if (sequence.Output.Finish == FinishReason.None && limit > 0 && session.Cache.Length >= limit)
        {
            sequence.Output.Finish = FinishReason.ContextFull;
        }
        if (sequence.Output.Finish != FinishReason.None)
        {
            if (_prefixCache is not null)
            {
                _prefixCache.Store(session); // the answer's turn boundary
            }
            Interlocked.Increment(ref _finished);
            End(sequence, sequence.Output.Finish);
        }
    }

    /// <summary>Ends a running sequence: its final event (with usage), then its slot, reservation and cache are freed.</summary>
    private void End(ScheduledSequence sequence, FinishReason reason)
    {
        // Usage reads the session; the reader sees the final event only once the resources are free.
        sequence.Output.Finish = reason;
        GenerationEvent final = sequence.Output.Final(sequence.Usage());
        Release(sequence);
        sequence.Events.Writer.TryWrite(final);
        sequence.Events.Writer.TryComplete();
    }

    private void Fail(ScheduledSequence sequence, Exception error)
    {
        Release(sequence);
        sequence.Events.Writer.TryComplete(error);
    }

    private static void WriteFinal(ScheduledSequence sequence, FinishReason reason)
    {
        sequence.Output.Finish = reason;
        sequence.Events.Writer.TryWrite(sequence.Output.Final(sequence.Usage()));
        sequence.Events.Writer.TryComplete();
    }

    private void Release(ScheduledSequence sequence)
    {
        if (sequence.Completed)
        {
            return;
        }
        sequence.Completed = true;
        _running.Remove(sequence);
        lock (_lock)
        {
            _runningCount--;
        }
        Interlocked.Add(ref _kvReserved, -sequence.ReservedBytes);
        sequence.Session = null; // drops the cache now, even while the reader still holds the request
        UpdateKvInUse();
    }

    private void UpdateKvInUse()
    {
        long bytes = 0;
        foreach (ScheduledSequence sequence in _running)
        {
            bytes += sequence.Session?.Cache.Bytes ?? 0;
        }
        Interlocked.Exchange(ref _kvInUse, bytes);
    }

    private static Span<float> Grow(ref float[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new float[Math.Max(length, buffer.Length * 2)];
        }
        return buffer.AsSpan(0, length);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _wake.Set();
        _loop.Join();
        _wake.Dispose();
    }
}
