using System.Text;
using System.Text.Json.Nodes;
using MimoSharp.Runtime.Constraints;
using MimoSharp.Runtime.Generation;
using MimoSharp.Tokenization;

namespace MimoSharp.Server.Tests;

/// <summary>
/// The JSON-schema token constraint, driven by random logits over the byte-level vocabulary (the
/// worst case: a model that prefers nothing): whatever it picks, the output is JSON the schema accepts.
/// The check is System.Text.Json's parser plus the schema's rules, not the constraint itself.
/// </summary>
public sealed class JsonConstraintTests
{
    private static readonly MimoTokenizer Tokenizer = MakeTokenizer();
    private static readonly HashSet<int> Stops = [256, 258];

    private static MimoTokenizer MakeTokenizer()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-constraint-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        ByteLevelTokenizerWriter.Write(dir, 300);
        return MimoTokenizer.Load(dir);
    }

    /// <summary>Samples under the constraint from random logits until a stop id, or gives up after <paramref name="limit"/> tokens.</summary>
    private static (string Text, bool Stopped) Decode(JsonSchema schema, int seed, int limit = 400, float stopBias = 0f)
    {
        var constraint = new JsonSchemaConstraint(schema, Tokenizer, Stops);
        var random = new Random(seed);
        var logits = new float[300];
        var bytes = new List<byte>();
        for (int step = 0; step < limit; step++)
        {
            for (int i = 0; i < logits.Length; i++)
            {
                logits[i] = (float)(random.NextDouble() * 4);
            }
            foreach (int stop in Stops)
            {
                logits[stop] += stopBias;
            }
            // Strings and numbers end sooner when their closing bytes are likelier, as in real text.
            logits['"'] += 3;
            logits['}'] += 3;
            logits[']'] += 3;
            constraint.Apply(logits);
            int best = 0;
            for (int i = 1; i < logits.Length; i++)
            {
                if (logits[i] > logits[best])
                {
                    best = i;
                }
            }
            Assert.False(float.IsNegativeInfinity(logits[best]), "the mask left no token");
            if (Stops.Contains(best))
            {
                Assert.True(constraint.IsComplete);
                return (Encoding.UTF8.GetString(bytes.ToArray()), true);
            }
            constraint.Accept(best);
            bytes.AddRange(Tokenizer.TokenBytes(best).ToArray());
        }
        return (Encoding.UTF8.GetString(bytes.ToArray()), false);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void SchemaOutputParsesAndFollowsTheSchema(int seed)
    {
        JsonSchema schema = JsonSchema.Compile(JsonNode.Parse("""
            {"type":"object","properties":{
               "name":{"type":"string"},
               "age":{"type":"integer"},
               "score":{"type":"number"},
               "tags":{"type":"array","items":{"enum":["a","bb",1,null]},"maxItems":3},
               "ok":{"type":"boolean"},
               "nested":{"type":"object","properties":{"x":{"type":["integer","null"]}},"required":["x"],"additionalProperties":false}},
             "required":["name","ok","nested"],"additionalProperties":false}
            """));
        (string text, bool stopped) = Decode(schema, seed);
        Assert.True(stopped, $"did not finish: {text}");
        JsonObject value = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(value.Count, value.Select(p => p.Key).Distinct().Count());
        Assert.All(value, p => Assert.Contains(p.Key, new[] { "name", "age", "score", "tags", "ok", "nested" }));
        Assert.Equal(System.Text.Json.JsonValueKind.String, value["name"]!.GetValueKind());
        Assert.Contains(value["ok"]!.GetValueKind(), new[] { System.Text.Json.JsonValueKind.True, System.Text.Json.JsonValueKind.False });
        if (value["age"] is JsonNode age)
        {
            Assert.Matches("^-?(0|[1-9][0-9]*)$", age.ToJsonString()); // an integer of any length
        }
        if (value["tags"] is JsonNode tags)
        {
            Assert.InRange(tags.AsArray().Count, 0, 3);
            Assert.All(tags.AsArray(), t => Assert.Contains(t?.ToJsonString() ?? "null", new[] { "\"a\"", "\"bb\"", "1", "null" }));
        }
        JsonObject nested = value["nested"]!.AsObject();
        Assert.Single(nested);
        Assert.True(nested["x"] is null || System.Text.RegularExpressions.Regex.IsMatch(nested["x"]!.ToJsonString(), "^-?(0|[1-9][0-9]*)$"));
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    public void JsonObjectModeGivesAnObject(int seed)
    {
        (string text, bool stopped) = Decode(JsonSchema.AnyObject, seed, stopBias: 2);
        if (stopped)
        {
            Assert.Equal(System.Text.Json.JsonValueKind.Object, JsonNode.Parse(text)!.GetValueKind());
        }
        else
        {
            Assert.StartsWith("{", text); // ran out of tokens mid-value: still a valid prefix
        }
    }

    [Fact]
    public void EnumPrefixesEndAtTheRightByte()
    {
        JsonSchema schema = JsonSchema.Compile(JsonNode.Parse("""{"type":"array","items":{"enum":[1,10,100]},"minItems":2,"maxItems":2}"""));
        for (int seed = 0; seed < 10; seed++)
        {
            (string text, bool stopped) = Decode(schema, seed);
            Assert.True(stopped, text);
            JsonArray array = JsonNode.Parse(text)!.AsArray();
            Assert.Equal(2, array.Count);
            Assert.All(array, v => Assert.Contains(v!.GetValue<int>(), new[] { 1, 10, 100 }));
        }
    }

    [Theory]
    [InlineData("""{"$ref":"#/defs/a"}""", "$ref")]
    [InlineData("""{"type":"object","properties":{"a":{"pattern":"x+"}}}""", "schema.properties.a.pattern")]
    [InlineData("""{"type":"tuple"}""", "schema.type")]
    [InlineData("""{"type":"object","properties":{},"required":["a"],"additionalProperties":false}""", "schema.required")]
    public void UnsupportedSchemasAreRefusedByPath(string schema, string path)
    {
        var ex = Assert.Throws<ArgumentException>(() => JsonSchema.Compile(JsonNode.Parse(schema)));
        Assert.Contains(path, ex.Message);
    }
}

/// <summary>When the grammar of a constrained answer starts, around the reasoning: a recording inner constraint shows which tokens it saw.</summary>
public sealed class AfterReasoningConstraintTests
{
    private const int ThinkStart = 7, ThinkEnd = 8;

    /// <summary>Allows only token 3 (or anything once something was accepted) and records what it is told.</summary>
    private sealed class Recording : ITokenConstraint
    {
        public List<int> Accepted { get; } = [];
        public int Applied { get; private set; }

        public void Apply(Span<float> logits)
        {
            Applied++;
            for (int i = 0; i < logits.Length; i++)
            {
                if (i != 3)
                {
                    logits[i] = float.NegativeInfinity;
                }
            }
        }

        public void Accept(int token) => Accepted.Add(token);
    }

    private static float[] Apply(ITokenConstraint c)
    {
        var logits = new float[10];
        c.Apply(logits);
        return logits;
    }

    [Fact]
    public void InsideAnOpenThinkBlockTheGrammarWaitsForItsEnd()
    {
        var inner = new Recording();
        var c = new AfterReasoningConstraint(inner, ThinkEnd, ThinkStart, startsInReasoning: true);
        Assert.All(Apply(c), v => Assert.Equal(0f, v)); // reasoning is free text
        foreach (int t in new[] { 1, 2, ThinkEnd, 3, 4 })
        {
            c.Accept(t);
        }
        Assert.Equal([3, 4], inner.Accepted);
        Assert.True(float.IsNegativeInfinity(Apply(c)[1]));
    }

    [Fact]
    public void WithoutAnOpenThinkBlockTheFirstTokenIsThinkOrWhatTheGrammarAllows()
    {
        var inner = new Recording();
        var c = new AfterReasoningConstraint(inner, ThinkEnd, ThinkStart, startsInReasoning: false);
        float[] first = Apply(c);
        Assert.Equal(0f, first[ThinkStart]); // may open a think block
        Assert.Equal(0f, first[3]); // or start the answer
        Assert.True(float.IsNegativeInfinity(first[1])); // but not free text
        c.Accept(3);
        c.Accept(5);
        Assert.Equal([3, 5], inner.Accepted); // the grammar holds from the first token

        var thinker = new Recording();
        var t = new AfterReasoningConstraint(thinker, ThinkEnd, ThinkStart, startsInReasoning: false);
        foreach (int token in new[] { ThinkStart, 1, 2, ThinkEnd, 3 })
        {
            t.Accept(token);
        }
        Assert.Equal([3], thinker.Accepted);
    }
}

/// <summary>Forced tool-call openings: with several allowed tools the output starts with one of their openings, whichever tokens it picks.</summary>
public sealed class ForcedPrefixConstraintTests
{
    [Fact]
    public void RandomLogitsUnderTwoAlternativesAlwaysProduceOneOfThemAndBothOccur()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-prefix-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        ByteLevelTokenizerWriter.Write(dir, 300);
        MimoTokenizer tokenizer = MimoTokenizer.Load(dir);
        string[] openings = ["<tool_call>\n<function=alpha>\n", "<tool_call>\n<function=beta>\n"];
        var seen = new HashSet<string>();
        for (int seed = 0; seed < 24; seed++)
        {
            var constraint = new ForcedPrefixConstraint(openings, tokenizer);
            var random = new Random(seed);
            var logits = new float[tokenizer.VocabularySize];
            var bytes = new List<byte>();
            for (int step = 0; step < 40; step++)
            {
                for (int i = 0; i < logits.Length; i++)
                {
                    logits[i] = (float)random.NextDouble();
                }
                constraint.Apply(logits);
                int best = Array.IndexOf(logits, logits.Max());
                Assert.False(float.IsNegativeInfinity(logits[best]), "the mask left no token");
                constraint.Accept(best);
                bytes.AddRange(tokenizer.TokenBytes(best).ToArray());
            }
            string text = Encoding.UTF8.GetString(bytes.ToArray());
            string? opening = openings.FirstOrDefault(text.StartsWith);
            Assert.True(opening is not null, $"seed {seed}: {text[..Math.Min(text.Length, 40)]}");
            seen.Add(opening!);
        }
        Assert.Equal(2, seen.Count);
    }
}

