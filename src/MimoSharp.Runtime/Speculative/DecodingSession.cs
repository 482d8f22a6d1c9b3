using System.Runtime.InteropServices;
using MimoSharp.Models;
using MimoSharp.Models.Caching;
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
/// With D = 0 it is plain decoding. A session allocates nothing per step.
/// </summary>
public sealed class DecodingSession
{
    private const int MaxDraftTokens = 3;
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
    private readonly float[] _verifyLogits;
    private readonly float[] _verifyHidden;
    private readonly float[] _headLogits;
    private readonly float[] _probs;
    private readonly int _vocab;
    private bool _prefilled;

    /// <summary>Test hook: sees (and may replace) each step's drafts after the heads proposed them.</summary>
    internal Action<Span<int>>? DraftOverride { get; set; }

    /// <param name="expectedLength">Prompt plus generated tokens expected: global-layer caches are sized for it once (up to 8192 positions).</param>
    public DecodingSession(MimoModel model, ITokenSampler sampler, int draftTokens, int reserve = 64, int expectedLength = 256)
    {
        if (draftTokens < 0 || draftTokens > MaxDraftTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(draftTokens), $"draft tokens must be 0..{MaxDraftTokens}, got {draftTokens}");
        }
        if (draftTokens > model.MtpHeads)
        {
            throw new ArgumentException($"{draftTokens} draft tokens need {draftTokens} MTP heads; the checkpoint has {model.MtpHeads}");
        }
        _model = model;
        _sampler = sampler;
        DraftTokens = draftTokens;
        _vocab = model.VocabSize;
        _cache = model.CreateCache(reserve: Math.Max(reserve, MaxDraftTokens + 1), initialCapacity: Math.Min(expectedLength, MaxPreallocatedPositions) + MaxDraftTokens + 1);
        _hidden = new HiddenHistory(model.HiddenSize);
        _usedTokens = Enumerable.Range(0, draftTokens).Select(_ => new int[UsedTokenRing]).ToArray();
        _verifyLogits = new float[(MaxDraftTokens + 1) * _vocab];
        _verifyHidden = new float[(MaxDraftTokens + 1) * model.HiddenSize];
        _headLogits = new float[_vocab];
        _probs = new float[_vocab];
        Stats = new AcceptanceStats(draftTokens);
    }

    public int DraftTokens { get; }

    /// <summary>Prompt tokens per forward during <see cref="Prefill"/> (default 512).</summary>
    public int PrefillChunk { get; init; } = 512;
    public AcceptanceStats Stats { get; }
    /// <summary>Prompt and generated tokens so far.</summary>
    public IReadOnlyList<int> Tokens => _stream;
    public SequenceKvCache Cache => _cache;

    /// <summary>Runs the prompt and returns the first generated token.</summary>
    public int Prefill(ReadOnlySpan<int> prompt)
    {
        if (_prefilled)
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
        // In chunks (as llama.cpp's ubatch): the forward's workspaces grow with the rows of one call
        // ([rows, q width] and the like), so a long prompt in one call would cost far more memory than
        // its KV cache; 512 rows keep the matrix products as efficient as one call.
        int chunk = Math.Max(1, PrefillChunk);
        var hidden = new float[Math.Min(prompt.Length, chunk) * _model.HiddenSize];
        int[] tokens = prompt.ToArray();
        for (int start = 0; start < tokens.Length; start += chunk)
        {
            int count = Math.Min(chunk, tokens.Length - start);
            bool last = start + count == tokens.Length;
            Span<float> chunkHidden = hidden.AsSpan(0, count * _model.HiddenSize);
            _model.Forward([new SequenceInput(_cache, tokens.AsMemory(start, count), last ? LogitRows.Last : LogitRows.None)],
                chunkHidden, last ? _verifyLogits : default);
            _hidden.Append(chunkHidden);
            if (DraftTokens == 0)
            {
                _hidden.KeepLast(HiddenKept); // no head will read the prompt's rows: keep the history small
            }
        }
        _stream.EnsureCapacity(tokens.Length + 1024); // decode steps then append without growing (for a while)
        _stream.AddRange(tokens);
        int first = Choose(_verifyLogits.AsSpan(0, _vocab), _stream.Count);
        _stream.Add(first);
        _prefilled = true;
        return first;
    }

    /// <summary>
    /// Generates the next 1..D+1 tokens into <paramref name="emitted"/> (length at least D + 1) and returns how many.
    /// </summary>
    public int Step(Span<int> emitted)
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
        int drafts = Math.Min(DraftTokens, room - 1);
        if (emitted.Length < drafts + 1)
        {
            throw new ArgumentException($"emitted holds {emitted.Length} tokens; a step can produce {drafts + 1}");
        }

        if (drafts > 0)
        {
            Draft(n, drafts);
            DraftOverride?.Invoke(_drafts.AsSpan(0, drafts));
        }

        // Verify [bonus, d1..dD] in one forward.
        _verify[0] = _stream[n];
        _drafts.AsSpan(0, drafts).CopyTo(_verify.AsSpan(1));
        _model.Forward([new SequenceInput(_cache, _verify.AsMemory(0, drafts + 1))], _verifyHidden, _verifyLogits);

        // The history a position's distribution sees includes the drafts before it.
        for (int i = 0; i < drafts; i++)
        {
            _stream.Add(_drafts[i]);
        }
        int accepted = 0;
        int bonus = -1;
        for (; accepted < drafts; accepted++)
        {
            ReadOnlySpan<float> logits = _verifyLogits.AsSpan(accepted * _vocab, _vocab);
            int draft = _drafts[accepted];
            int historyLength = n + 1 + accepted;
            _sampler.Probabilities(logits, CollectionsMarshal.AsSpan(_stream)[..historyLength], _probs);
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
        }
        _stream.RemoveRange(n + 1 + accepted, drafts - accepted);
        if (bonus < 0)
        {
            bonus = Choose(_verifyLogits.AsSpan(accepted * _vocab, _vocab), n + 1 + accepted);
        }
        _stream.Add(bonus);

        _cache.RemoveLast(drafts - accepted);
        _hidden.Append(_verifyHidden.AsSpan(0, (accepted + 1) * _model.HiddenSize));
        _hidden.KeepLast(HiddenKept);
        Stats.Record(drafts, accepted);

        _drafts.AsSpan(0, accepted).CopyTo(emitted);
        emitted[accepted] = bonus;
        return accepted + 1;
    }

    /// <summary>A token from the distribution after <paramref name="logits"/>, given the first <paramref name="historyLength"/> stream tokens.</summary>
    private int Choose(ReadOnlySpan<float> logits, int historyLength)
    {
        // Greedy goes through the sampler too: penalties, logit bias and padding rows still apply.
        _sampler.Probabilities(logits, CollectionsMarshal.AsSpan(_stream)[..historyLength], _probs);
        return _sampler.IsGreedy ? VectorMath.ArgMax(_probs) : _sampler.Draw(_probs);
    }

    /// <summary>Runs heads 0..drafts-1 over the rows they have not seen (or saw with a token since replaced) and fills _drafts.</summary>
    private void Draft(int n, int drafts)
    {
        for (int k = 0; k < drafts; k++)
        {
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
            _model.ForwardMtp(k, [new MtpInput(_cache, tokens.AsMemory(0, rows), _hidden.Rows(valid, rows), LogitRows.Last)], _headLogits);
            _drafts[k] = VectorMath.ArgMax(_headLogits);
        }
    }

    /// <summary>Token at stream index i: committed (i ≤ n), else this round's draft d_{i−n}.</summary>
    private int StreamToken(int i, int n) => i <= n ? _stream[i] : _drafts[i - n - 1];
}
