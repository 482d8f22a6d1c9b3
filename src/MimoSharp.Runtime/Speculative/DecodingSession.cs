using System.Runtime.InteropServices;
using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Layers;
using MimoSharp.Runtime.Generation;
using MimoSharp.Tensors.Kernels;

namespace MimoSharp.Runtime.Speculative;

/// <summary>
/// Decodes one sequence, with MiMo's MTP heads as a built-in draft model (spec §3.2-3.3).
/// Each <see cref="Step"/>:
/// 1. draft: head k (k = 0..D-1) runs on the rows the main model has processed since it last ran,
///    feeding each row t the main model's pre-norm hidden state h_t and the embedding of token
///    x_{t+k+1} (a previous head's draft where the stream has not reached yet); its last row
///    proposes d_{k+1}. Heads are not chained through hidden states.
/// 2. verify: the main model runs [bonus, d_1..d_D] in one forward over its cache.
/// 3. accept: greedy keeps d_i while it equals the argmax of the target distribution (after the
///    sampler's penalties and bias); sampling keeps d_i with
///    probability p(d_i) (drafts are argmax picks, so q is one-hot and min(1, p/q) = p) and on
///    rejection draws from p with d_i removed — the normalised residual max(p − q, 0) — so the output
///    follows the target distribution exactly. Rejected positions leave the main cache; a head's
///    rows whose input token turned out different from the committed stream leave its cache at the
///    next draft step.
/// With D = 0 it is plain decoding. A session allocates nothing per step (unless log-probabilities
/// are asked for: each is an object handed to the caller).
/// The phases (prompt chunks, draft inputs per head, the verify input, the step's completion) are
/// also driven one by one by the scheduler, which runs the forwards of many sessions as one batch;
/// <see cref="Prefill"/> and <see cref="Step"/> drive them for one sequence.
/// </summary>
public sealed class DecodingSession
{
    internal const int MaxDraftTokens = 3;
    private const int UsedTokenRing = 64;
    private const int HiddenKept = 16;
    /// <summary>Global caches are sized up front for at most this many positions; longer sequences grow them (amortised).</summary>
    private const int MaxPreallocatedPositions = 8192;

    private readonly MimoModel _model;
    private readonly ITokenSampler _sampler;
    private readonly SequenceKvCache _cache;
    private readonly List<int> _stream = [];
    private readonly HiddenHistory _hidden;
    private readonly int[][] _usedTokens; // per head: input token of row t at [t % ring]
    private readonly int[] _drafts = new int[MaxDraftTokens];
    private readonly int[] _verify = new int[MaxDraftTokens + 1];
    private readonly int[] _headTokens = new int[UsedTokenRing];
    private readonly float[] _probs;
    private readonly float[]? _masked;
    private readonly TokenLogprob?[] _logprobs = new TokenLogprob?[MaxDraftTokens + 1];
    private readonly int _vocab;
    private int[] _prompt = [];
    private bool _prefilled;
    private int _stepStart = -1; // main cache length when the step in progress began; -1 between steps
    private int _stepDrafts;
    // Buffers of the one-sequence drivers (Prefill, Step); the scheduler brings its own.
    private ForwardWorkspace? _workspace;
    private float[]? _verifyLogits;
    private float[]? _verifyHidden;
    private float[]? _headLogits;

    /// <summary>Test hook: sees (and may replace) each step's drafts after the heads proposed them.</summary>
    internal Action<Span<int>>? DraftOverride { get; set; }

    /// <param name="expectedLength">Prompt plus generated tokens expected: global-layer caches are sized for it once (up to 8192 positions).</param>
    /// <param name="constraint">Optional grammar: masks the logits before every choice; drafting is off with one.</param>
    /// <param name="topLogprobs">When set (0..20), every emitted token gets its log-probability and this many alternatives.</param>
    public DecodingSession(MimoModel model, ITokenSampler sampler, int draftTokens, int reserve = 64, int expectedLength = 256,
        ITokenConstraint? constraint = null, int? topLogprobs = null)
        : this(model, sampler, draftTokens, constraint, topLogprobs,
            model.CreateCache(reserve: Math.Max(reserve, MaxDraftTokens + 1), initialCapacity: Math.Min(expectedLength, MaxPreallocatedPositions) + MaxDraftTokens + 1))
    {
    }

    /// <summary>A session over a cache the caller made (the scheduler sizes and accounts caches itself).</summary>
    internal DecodingSession(MimoModel model, ITokenSampler sampler, int draftTokens, ITokenConstraint? constraint, int? topLogprobs, SequenceKvCache cache)
    {
        if (draftTokens < 0 || draftTokens > MaxDraftTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(draftTokens), $"draft tokens must be 0..{MaxDraftTokens}, got {draftTokens}");
        }
        if (draftTokens > model.MtpHeads)
        {
            throw new ArgumentException($"{draftTokens} draft tokens need {draftTokens} MTP heads; the checkpoint has {model.MtpHeads}");
        }
        if (topLogprobs is < 0 or > TokenLogprobs.MaxTop)
        {
            throw new ArgumentOutOfRangeException(nameof(topLogprobs), $"top_logprobs must be 0..{TokenLogprobs.MaxTop}, got {topLogprobs}");
        }
        _model = model;
        _sampler = sampler;
        // A grammar judges one position at a time: a draft's mask would depend on tokens not yet accepted.
        DraftTokens = constraint is null ? draftTokens : 0;
        Constraint = constraint;
        TopLogprobs = topLogprobs;
        _vocab = model.VocabSize;
        _cache = cache;
        _hidden = new HiddenHistory(model.HiddenSize);
        _usedTokens = Enumerable.Range(0, DraftTokens).Select(_ => new int[UsedTokenRing]).ToArray();
        _probs = new float[_vocab];
        _masked = constraint is null ? null : new float[_vocab];
        Stats = new AcceptanceStats(DraftTokens);
    }

    public int DraftTokens { get; }
    public ITokenConstraint? Constraint { get; }
    public int? TopLogprobs { get; }

    /// <summary>Prompt tokens per forward during <see cref="Prefill"/> (default 512).</summary>
    public int PrefillChunk { get; init; } = 512;
    public AcceptanceStats Stats { get; }
    /// <summary>Prompt and generated tokens so far.</summary>
    public IReadOnlyList<int> Tokens => _stream;
    public SequenceKvCache Cache => _cache;
    public bool IsPrefilled => _prefilled;

    /// <summary>The log-probability of the i-th token of the last <see cref="Prefill"/> (i = 0) or <see cref="Step"/>; null unless asked for.</summary>
    public TokenLogprob? Logprob(int i) => _logprobs[i];

    /// <summary>Runs the prompt and returns the first generated token.</summary>
    public int Prefill(ReadOnlySpan<int> prompt)
    {
        BeginPrefill(prompt);
        int chunk = Math.Max(1, PrefillChunk);
        var hidden = new float[Math.Min(PromptRemaining, chunk) * _model.HiddenSize];
        _verifyLogits ??= new float[(MaxDraftTokens + 1) * _vocab];
        _workspace ??= new ForwardWorkspace();
        int first = -1;
        while (PromptRemaining > 0)
        {
            SequenceInput input = PromptChunk(chunk);
            Span<float> chunkHidden = hidden.AsSpan(0, input.Tokens.Length * _model.HiddenSize);
            bool last = input.Logits == LogitRows.Last;
            _model.Forward(_workspace, [input], chunkHidden, last ? _verifyLogits : default);
            first = CompletePromptChunk(input.Tokens.Length, chunkHidden, last ? _verifyLogits.AsSpan(0, _vocab) : default);
        }
        // The heads read the prompt now, as part of prompt processing: the first decode step then runs
        // only its few new rows per head instead of the whole prompt.
        for (int k = 0; k < DraftTokens; k++)
        {
            while (HeadPromptInput(k, chunk) is { } headInput)
            {
                _model.ForwardMtp(_workspace, k, [headInput], default);
            }
        }
        return first;
    }

    /// <summary>
    /// After the prompt: head k's rows that need no draft, [head length, n − 1 − k) of the n prompt
    /// positions (row t reads token t + k + 1, committed up to the first generated token), at most
    /// <paramref name="maxRows"/> per forward (its workspaces grow with the rows); null when none are left. The last row stays for the first step, whose logits propose the draft.
    /// </summary>
    private MtpInput? HeadPromptInput(int k, int maxRows)
    {
        int n = _cache.Length;
        LayerKvCache head = _cache.Mtp(k);
        int from = head.Length, to = Math.Min(n - 1 - k, from + maxRows);
        if (to <= from || _hidden.FirstPosition > from || _hidden.EndPosition < to)
        {
            return null;
        }
        int rows = to - from;
        var tokens = new int[rows]; // once per request, not per step
        int[] used = _usedTokens[k];
        for (int t = from; t < to; t++)
        {
            tokens[t - from] = _stream[t + k + 1];
            used[t % UsedTokenRing] = tokens[t - from];
        }
        return new MtpInput(_cache, tokens, _hidden.Rows(from, rows), LogitRows.None);
    }

    /// <summary>Starts the prompt (a restored prefix already in the cache counts as done); <see cref="PromptChunk"/> then feeds the rest.</summary>
    internal void BeginPrefill(ReadOnlySpan<int> prompt)
    {
        if (_prefilled || _prompt.Length > 0)
        {
            throw new InvalidOperationException("this session has already been prefilled");
        }
        if (prompt.IsEmpty)
        {
            throw new ArgumentException("the prompt holds no tokens; at least one is needed");
        }
        int limit = _model.Config.MaxPositionEmbeddings;
        if (limit > 0 && prompt.Length >= limit)
        {
            throw new ArgumentException($"the prompt of {prompt.Length} tokens leaves no room in the context of {limit} (max_position_embeddings)");
        }
        if (_cache.Length >= prompt.Length)
        {
            throw new InvalidOperationException($"the cache already holds {_cache.Length} positions; at least the prompt's last token ({prompt.Length}) must run");
        }
        _prompt = prompt.ToArray();
        _stream.EnsureCapacity(_prompt.Length + 1024); // decode steps then append without growing (for a while)
        _stream.AddRange(_prompt);
        if (_hidden.Count == 0)
        {
            _hidden.Reset(_cache.Length);
        }
    }

    /// <summary>Prompt tokens not yet run.</summary>
    internal int PromptRemaining => _prefilled ? 0 : _prompt.Length - _cache.Length;

    /// <summary>
    /// The next up to <paramref name="maxTokens"/> prompt tokens. In chunks (as llama.cpp's ubatch):
    /// the forward's workspaces grow with the rows of one call ([rows, q width] and the like), so a long
    /// prompt in one call would cost far more memory than its KV cache.
    /// </summary>
    internal SequenceInput PromptChunk(int maxTokens)
    {
        int start = _cache.Length;
        int count = Math.Min(Math.Max(1, maxTokens), _prompt.Length - start);
        bool last = start + count == _prompt.Length;
        return new SequenceInput(_cache, _prompt.AsMemory(start, count), last ? LogitRows.Last : LogitRows.None);
    }

    /// <summary>
    /// After the forward of a <see cref="PromptChunk"/>: keeps its hidden rows [count, H]; on the last
    /// chunk chooses the first token from <paramref name="lastLogits"/> [vocab] and returns it (else -1).
    /// </summary>
    internal int CompletePromptChunk(int count, ReadOnlySpan<float> hidden, ReadOnlySpan<float> lastLogits)
    {
        _hidden.Append(hidden[..(count * _model.HiddenSize)]);
        if (DraftTokens == 0)
        {
            _hidden.KeepLast(HiddenKept); // no head will read the prompt's rows: keep the history small
        }
        if (_cache.Length < _prompt.Length)
        {
            return -1;
        }
        ClearLogprobs();
        int first = Choose(lastLogits, _stream.Count, 0);
        _stream.Add(first);
        _prefilled = true;
        return first;
    }

    /// <summary>
    /// Generates the next 1..D+1 tokens into <paramref name="emitted"/> (length at least D + 1) and returns how many.
    /// </summary>
    public int Step(Span<int> emitted)
    {
        _workspace ??= new ForwardWorkspace();
        _verifyLogits ??= new float[(MaxDraftTokens + 1) * _vocab];
        _verifyHidden ??= new float[(MaxDraftTokens + 1) * _model.HiddenSize];
        _headLogits ??= new float[_vocab];
        int drafts = BeginStep();
        if (emitted.Length < drafts + 1)
        {
            throw new ArgumentException($"emitted holds {emitted.Length} tokens; a step can produce {drafts + 1}");
        }
        for (int k = 0; k < drafts; k++)
        {
            _model.ForwardMtp(_workspace, k, [DraftInput(k)], _headLogits);
            SetDraft(k, _headLogits);
        }
        _model.Forward(_workspace, [VerifyInput()], _verifyHidden, _verifyLogits);
        return CompleteStep(_verifyLogits, _verifyHidden, emitted);
    }

    /// <summary>Starts a decode step and returns how many drafts it makes (fewer near the end of the context).</summary>
    internal int BeginStep()
    {
        if (!_prefilled)
        {
            throw new InvalidOperationException("call Prefill before Step");
        }
        int n = _cache.Length; // positions the main model holds; _stream[n] is the last token, not yet run
        int limit = _model.Config.MaxPositionEmbeddings;
        int room = limit > 0 ? limit - n : int.MaxValue;
        if (room <= 0)
        {
            throw new InvalidOperationException($"the context of {limit} tokens is full");
        }
        _stepStart = n;
        _stepDrafts = Math.Min(DraftTokens, room - 1);
        return _stepDrafts;
    }

    /// <summary>
    /// Head k's input for this step: the rows it has not seen (or saw with a token since replaced).
    /// Heads run in order: head k reads the drafts of heads before it (<see cref="SetDraft"/>).
    /// </summary>
    internal MtpInput DraftInput(int k)
    {
        int n = _stepStart;
        LayerKvCache head = _cache.Mtp(k);
        int[] used = _usedTokens[k];

        // Rows t >= n - k took a token past the committed stream; rows whose token changed are stale too.
        int valid = Math.Min(head.Length, n - k);
        for (int t = Math.Max(0, head.Length - UsedTokenRing / 2); t < valid; t++)
        {
            if (used[t % UsedTokenRing] != StreamToken(t + k + 1, n))
            {
                valid = t;
                break;
            }
        }
        valid = Math.Max(valid, 0);
        if (head.Length > valid)
        {
            head.RemoveLast(head.Length - valid);
        }

        int rows = n - valid;
        int[] tokens = rows <= _headTokens.Length ? _headTokens : new int[rows]; // only a prefill exceeds the buffer
        for (int t = valid; t < n; t++)
        {
            int token = StreamToken(t + k + 1, n);
            tokens[t - valid] = token;
            used[t % UsedTokenRing] = token;
        }
        return new MtpInput(_cache, tokens.AsMemory(0, rows), _hidden.Rows(valid, rows), LogitRows.Last);
    }

    /// <summary>Head k's proposal from the logits [vocab] of its last row.</summary>
    internal void SetDraft(int k, ReadOnlySpan<float> headLogits)
    {
        _drafts[k] = VectorMath.ArgMax(headLogits);
        if (k == _stepDrafts - 1)
        {
            DraftOverride?.Invoke(_drafts.AsSpan(0, _stepDrafts));
        }
    }

    /// <summary>The verify rows [bonus, d1..dD]; every row gets logits.</summary>
    internal SequenceInput VerifyInput()
    {
        _verify[0] = _stream[_stepStart];
        _drafts.AsSpan(0, _stepDrafts).CopyTo(_verify.AsSpan(1));
        return new SequenceInput(_cache, _verify.AsMemory(0, _stepDrafts + 1));
    }

    /// <summary>
    /// Accepts drafts against the verify forward's logits [D + 1, vocab] and hidden rows [D + 1, H],
    /// writes the committed tokens to <paramref name="emitted"/> and returns how many.
    /// </summary>
    internal int CompleteStep(ReadOnlySpan<float> logits, ReadOnlySpan<float> hidden, Span<int> emitted)
    {
        int n = _stepStart, drafts = _stepDrafts;
        _stepStart = -1;
        ClearLogprobs();
        // The history a position's distribution sees includes the drafts before it.
        for (int i = 0; i < drafts; i++)
        {
            _stream.Add(_drafts[i]);
        }
        int accepted = 0;
        int bonus = -1;
        for (; accepted < drafts; accepted++)
        {
            ReadOnlySpan<float> rowLogits = logits.Slice(accepted * _vocab, _vocab);
            int draft = _drafts[accepted];
            int historyLength = n + 1 + accepted;
            _sampler.Probabilities(rowLogits, CollectionsMarshal.AsSpan(_stream)[..historyLength], _probs);
            if (_sampler.IsGreedy)
            {
                int target = VectorMath.ArgMax(_probs);
                if (target != draft)
                {
                    bonus = target;
                    break;
                }
            }
            else
            {
                float p = _probs[draft];
                if (!(_sampler.NextUniform() < p))
                {
                    _probs[draft] = 0f; // the residual max(p - onehot(draft), 0)
                    bonus = _sampler.Draw(_probs);
                    break;
                }
            }
            RecordLogprob(accepted, rowLogits, draft);
        }
        _stream.RemoveRange(n + 1 + accepted, drafts - accepted);
        if (bonus < 0)
        {
            bonus = Choose(logits.Slice(accepted * _vocab, _vocab), n + 1 + accepted, accepted);
        }
        else
        {
            RecordLogprob(accepted, logits.Slice(accepted * _vocab, _vocab), bonus);
        }
        _stream.Add(bonus);

        _cache.RemoveLast(drafts - accepted);
        _hidden.Append(hidden[..((accepted + 1) * _model.HiddenSize)]);
        _hidden.KeepLast(HiddenKept);
        Stats.Record(drafts, accepted);

        _drafts.AsSpan(0, accepted).CopyTo(emitted);
        emitted[accepted] = bonus;
        return accepted + 1;
    }

    /// <summary>
    /// Between steps: how many of head k's cached rows were fed the committed stream's tokens (the
    /// rows a later request with the same prefix may keep), as the next draft would judge them.
    /// </summary>
    internal int ValidHeadRows(int k)
    {
        if (k >= DraftTokens || _stepStart >= 0)
        {
            return 0;
        }
        int n = _cache.Length;
        LayerKvCache head = _cache.Mtp(k);
        int valid = Math.Min(head.Length, n - k);
        for (int t = Math.Max(0, head.Length - UsedTokenRing / 2); t < valid; t++)
        {
            if (_usedTokens[k][t % UsedTokenRing] != _stream[t + k + 1])
            {
                return t;
            }
        }
        return Math.Max(valid, 0);
    }

    /// <summary>
    /// After a prefix-cache restore of <see cref="Cache"/> to <paramref name="length"/> positions whose
    /// tokens are <paramref name="prefix"/>: the MTP heads' restored rows are marked as fed with those
    /// tokens (so the next draft keeps them), and the hidden history starts at the cut.
    /// </summary>
    internal void AdoptRestoredPrefix(ReadOnlySpan<int> prefix, int length)
    {
        for (int k = 0; k < DraftTokens; k++)
        {
            int rows = _cache.Mtp(k).Length;
            int[] used = _usedTokens[k];
            for (int t = Math.Max(0, rows - UsedTokenRing / 2); t < rows; t++)
            {
                used[t % UsedTokenRing] = prefix[t + k + 1];
            }
        }
        _hidden.Reset(length);
    }

    /// <summary>A token from the distribution after <paramref name="logits"/>, given the first <paramref name="historyLength"/> stream tokens.</summary>
    private int Choose(ReadOnlySpan<float> logits, int historyLength, int emitIndex)
    {
        ReadOnlySpan<float> distribution = logits;
        if (Constraint is { } constraint)
        {
            logits.CopyTo(_masked);
            constraint.Apply(_masked);
            if (float.IsNegativeInfinity(_masked![VectorMath.ArgMax(_masked)]))
            {
                throw new InvalidOperationException($"the token constraint allows no token at position {historyLength}");
            }
            distribution = _masked;
        }
        // Greedy goes through the sampler too: penalties, logit bias and padding rows still apply.
        _sampler.Probabilities(distribution, CollectionsMarshal.AsSpan(_stream)[..historyLength], _probs);
        int token = _sampler.IsGreedy ? VectorMath.ArgMax(_probs) : _sampler.Draw(_probs);
        RecordLogprob(emitIndex, logits, token);
        Constraint?.Accept(token);
        return token;
    }

    private void RecordLogprob(int index, ReadOnlySpan<float> logits, int token)
    {
        if (TopLogprobs is int top)
        {
            // Padding rows of the LM head are no tokens: leave them out of the ranking and the softmax.
            _logprobs[index] = TokenLogprobs.FromLogits(logits[..Math.Min(logits.Length, _sampler.ValidVocabSize)], token, top);
        }
    }

    private void ClearLogprobs() => Array.Clear(_logprobs);

    /// <summary>Token at stream index i: committed (i ≤ n), else this round's draft d_{i−n}.</summary>
    private int StreamToken(int i, int n) => i <= n ? _stream[i] : _drafts[i - n - 1];
}
