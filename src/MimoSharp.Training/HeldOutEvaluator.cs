using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Tokenization;

namespace MimoSharp.Training;

/// <summary>Negative log-likelihood of a text under a model: tokens, UTF-8 bytes, nats per token and bits per byte.</summary>
public sealed record TextEvaluation(long Tokens, long Bytes, double NllPerToken, double BitsPerByte);

/// <summary>
/// Scores a text with the inference engine (what `mimo generate` runs). The text is tokenized whole
/// and cut into windows of context − 1 tokens; each window starts a fresh sequence with
/// &lt;|endoftext|&gt; (how training separates documents) so every token of the text is predicted once.
/// bits per byte = Σ NLL / ln 2 / UTF-8 bytes.
/// </summary>
public static class HeldOutEvaluator
{
    public static TextEvaluation Evaluate(MimoModel model, MimoTokenizer tokenizer, string text, int context)
    {
        if (context < 2)
        {
            throw new ArgumentException($"--context must be at least 2, got {context}");
        }
        int start = tokenizer.TokenToId("<|endoftext|>") ?? throw new ArgumentException("the tokenizer has no <|endoftext|> token to start each window with");
        if (tokenizer.VocabularySize > model.VocabSize)
        {
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabularySize} ids but the model's vocab_size is {model.VocabSize}; they do not belong together");
        }
        int[] ids = tokenizer.Encode(text).ToArray();
        long bytes = System.Text.Encoding.UTF8.GetByteCount(text);
        if (ids.Length == 0)
        {
            throw new ArgumentException("the text is empty; nothing to evaluate");
        }
        int window = context - 1;
        int v = model.VocabSize;
        var input = new int[context];
        var logits = new float[(long)context * v];
        double nll = 0;
        for (int begin = 0; begin < ids.Length; begin += window)
        {
            int count = Math.Min(window, ids.Length - begin);
            input[0] = start;
            Array.Copy(ids, begin, input, 1, count);
            SequenceKvCache cache = model.CreateCache(initialCapacity: count + 1);
            // Row r predicts input[r + 1]: rows 0..count-1 score the window's tokens.
            model.Forward([new SequenceInput(cache, input.AsMemory(0, count))], default, logits);
            for (int r = 0; r < count; r++)
            {
                ReadOnlySpan<float> row = logits.AsSpan(r * v, v);
                float max = float.NegativeInfinity;
                foreach (float l in row)
                {
                    max = MathF.Max(max, l);
                }
                double sum = 0;
                foreach (float l in row)
                {
                    sum += Math.Exp(l - max);
                }
                nll += Math.Log(sum) + max - row[input[r + 1]];
            }
        }
        return new TextEvaluation(ids.Length, bytes, nll / ids.Length, nll / Math.Log(2) / bytes);
    }
}
