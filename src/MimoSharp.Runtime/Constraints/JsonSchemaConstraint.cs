using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using MimoSharp.Runtime.Generation;
using MimoSharp.Tokenization;

namespace MimoSharp.Runtime.Constraints;

/// <summary>
/// Constrained decoding for OpenAI's <c>response_format</c>: only tokens whose bytes keep the output a
/// prefix of compact JSON (no whitespace between tokens of the grammar) that the schema accepts survive
/// the mask; once the value is complete only the stop ids do. Supported schema keywords: <c>type</c>
/// (one or a list), <c>properties</c>, <c>required</c>, <c>additionalProperties</c>, <c>items</c>,
/// <c>minItems</c>, <c>maxItems</c>, <c>enum</c>, <c>const</c>, <c>anyOf</c>/<c>oneOf</c> (the first
/// alternative that accepts a value's first byte is taken). Anything else (<c>$ref</c>, <c>allOf</c>,
/// <c>pattern</c>, ...) is refused by <see cref="JsonSchema.Compile"/> rather than ignored.
/// </summary>
public sealed class JsonSchemaConstraint : ITokenConstraint
{
    private static readonly ConditionalWeakTable<MimoTokenizer, byte[][]> s_tokenBytes = new();

    private readonly byte[][] _tokens;
    private readonly IReadOnlySet<int> _stopIds;
    private readonly HashSet<int> _special;
    private JsonMatcher _matcher;

    /// <param name="schema">A compiled schema (<see cref="JsonSchema.Compile"/>), or <see cref="JsonSchema.AnyObject"/> for json_object.</param>
    public JsonSchemaConstraint(JsonSchema schema, MimoTokenizer tokenizer, IReadOnlySet<int> stopIds)
    {
        _tokens = s_tokenBytes.GetValue(tokenizer, t => Enumerable.Range(0, t.VocabularySize).Select(id => t.TokenBytes(id).ToArray()).ToArray());
        _stopIds = stopIds;
        _special = Enumerable.Range(0, tokenizer.VocabularySize).Where(tokenizer.IsSpecial).ToHashSet();
        _matcher = new JsonMatcher(schema.Root);
    }

    /// <summary>True once the output is one complete JSON value.</summary>
    public bool IsComplete => _matcher.IsComplete;

    /// <summary>The bytes accepted so far.</summary>
    public string Text => Encoding.UTF8.GetString(_matcher.Accepted.ToArray());

    public void Apply(Span<float> logits)
    {
        bool complete = _matcher.IsComplete;
        bool any = false;
        for (int id = 0; id < logits.Length; id++)
        {
            bool allowed;
            if (_stopIds.Contains(id))
            {
                allowed = complete;
            }
            else if (complete || id >= _tokens.Length || _tokens[id].Length == 0 || _special.Contains(id))
            {
                allowed = false;
            }
            else
            {
                allowed = _matcher.Clone().TryFeed(_tokens[id]);
            }
            if (allowed)
            {
                any = true;
            }
            else
            {
                logits[id] = float.NegativeInfinity;
            }
        }
        if (!any)
        {
            // A dead end (the vocabulary cannot continue the value): let the model stop rather than
            // leave a distribution with no token in it.
            foreach (int stop in _stopIds)
            {
                if ((uint)stop < (uint)logits.Length)
                {
                    logits[stop] = 0f;
                }
            }
        }
    }

    public void Accept(int token)
    {
        if (_stopIds.Contains(token) || (uint)token >= (uint)_tokens.Length)
        {
            return;
        }
        JsonMatcher next = _matcher.Clone();
        if (next.TryFeed(_tokens[token]))
        {
            _matcher = next;
        }
    }
}

/// <summary>
/// Applies an inner constraint only after the model's reasoning ends (the <c>&lt;/think&gt;</c> token),
/// so thinking stays free text and the answer follows the grammar. When the prompt does not leave the model
/// inside an open <c>&lt;think&gt;</c> (<paramref name="startsInReasoning"/> false), the model may still open one
/// with its first token: that first token may be <c>&lt;think&gt;</c> (then the grammar waits for its end) or
/// anything the grammar allows (then the grammar holds from that token on), never free text that skips both.
/// </summary>
public sealed class AfterReasoningConstraint(ITokenConstraint inner, int thinkEndId, int? thinkStartId = null, bool startsInReasoning = true) : ITokenConstraint
{
    private enum Phase { FirstToken, Reasoning, Answer }

    private Phase _phase = startsInReasoning || thinkStartId is null ? Phase.Reasoning : Phase.FirstToken;

    public void Apply(Span<float> logits)
    {
        switch (_phase)
        {
            case Phase.Answer:
                inner.Apply(logits);
                break;
            case Phase.FirstToken:
                // The grammar's first tokens, and <think>.
                int start = thinkStartId!.Value;
                float think = logits[start];
                inner.Apply(logits);
                logits[start] = think;
                break;
        }
    }

    public void Accept(int token)
    {
        switch (_phase)
        {
            case Phase.Answer:
                inner.Accept(token);
                break;
            case Phase.FirstToken when token == thinkStartId:
                _phase = Phase.Reasoning;
                break;
            case Phase.FirstToken:
                _phase = Phase.Answer;
                inner.Accept(token);
                break;
            case Phase.Reasoning when token == thinkEndId:
                _phase = Phase.Answer;
                break;
        }
    }
}

/// <summary>
/// Forces the output to begin with one of a set of fixed texts (a tool call's opening for tool_choice required /
/// named: one per allowed tool, so the function name is one of the request's tools), then leaves it free.
/// </summary>
public sealed class ForcedPrefixConstraint : ITokenConstraint
{
    private readonly byte[][] _tokens;
    private readonly byte[][] _prefixes;
    private readonly List<byte> _emitted = [];
    private bool _done;

    public ForcedPrefixConstraint(string prefix, MimoTokenizer tokenizer) : this([prefix], tokenizer)
    {
    }

    public ForcedPrefixConstraint(IReadOnlyList<string> prefixes, MimoTokenizer tokenizer)
    {
        if (prefixes.Count == 0)
        {
            throw new ArgumentException("at least one prefix is needed", nameof(prefixes));
        }
        _prefixes = prefixes.Select(Encoding.UTF8.GetBytes).ToArray();
        _tokens = Enumerable.Range(0, tokenizer.VocabularySize).Select(id => tokenizer.TokenBytes(id).ToArray()).ToArray();
    }

    public void Apply(Span<float> logits)
    {
        if (_done)
        {
            return;
        }
        ReadOnlySpan<byte> emitted = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_emitted);
        for (int id = 0; id < logits.Length; id++)
        {
            byte[] bytes = id < _tokens.Length ? _tokens[id] : [];
            bool allowed = false;
            foreach (byte[] prefix in _prefixes)
            {
                if (!prefix.AsSpan().StartsWith(emitted))
                {
                    continue; // an alternative the output already left
                }
                // A token may finish the prefix and go on, or cover part of it.
                ReadOnlySpan<byte> rest = prefix.AsSpan(emitted.Length);
                if (bytes.Length > 0 && (bytes.Length <= rest.Length ? rest.StartsWith(bytes) : bytes.AsSpan().StartsWith(rest)))
                {
                    allowed = true;
                    break;
                }
            }
            if (!allowed)
            {
                logits[id] = float.NegativeInfinity;
            }
        }
    }

    public void Accept(int token)
    {
        if (_done || (uint)token >= (uint)_tokens.Length)
        {
            return;
        }
        _emitted.AddRange(_tokens[token]);
        ReadOnlySpan<byte> emitted = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_emitted);
        foreach (byte[] prefix in _prefixes)
        {
            _done |= emitted.StartsWith(prefix);
        }
    }
}

/// <summary>A JSON schema compiled to the grammar <see cref="JsonSchemaConstraint"/> decodes with.</summary>
public sealed class JsonSchema
{
    private JsonSchema(SchemaNode root) => Root = root;

    internal SchemaNode Root { get; }

    /// <summary>Any JSON object (<c>response_format: json_object</c>).</summary>
    public static JsonSchema AnyObject { get; } = new(new ObjectSchema(new Dictionary<string, SchemaNode>(), [], AnySchema.Instance));

    /// <summary>Compiles <paramref name="schema"/>; throws <see cref="ArgumentException"/> naming the path of an unsupported or invalid part.</summary>
    public static JsonSchema Compile(JsonNode? schema, string path = "schema") => new(CompileNode(schema, path, 0));

    private static readonly HashSet<string> s_ignored = new(StringComparer.Ordinal)
    {
        "title", "description", "$schema", "$id", "default", "examples", "format", "strict", "name", "$comment",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "multipleOf", "deprecated", "readOnly", "writeOnly",
    };

    private static SchemaNode CompileNode(JsonNode? node, string path, int depth)
    {
        if (depth > 32)
        {
            throw new ArgumentException($"{path}: the schema nests deeper than 32 levels");
        }
        if (node is JsonValue v && v.TryGetValue(out bool b))
        {
            return b ? AnySchema.Instance : throw new ArgumentException($"{path}: the schema false accepts no value");
        }
        if (node is not JsonObject o)
        {
            throw new ArgumentException($"{path}: a schema must be a JSON object, got {Kind(node)}");
        }
        foreach ((string key, _) in o)
        {
            if (key is not ("type" or "properties" or "required" or "additionalProperties" or "items" or "minItems" or "maxItems" or "enum" or "const" or "anyOf" or "oneOf")
                && !s_ignored.Contains(key))
            {
                throw new ArgumentException($"{path}.{key}: this schema keyword is not supported by constrained decoding");
            }
        }
        if (o["const"] is { } constant)
        {
            return new EnumSchema([constant.ToJsonString()]);
        }
        if (o["enum"] is { } enumNode)
        {
            if (enumNode is not JsonArray values || values.Count == 0)
            {
                throw new ArgumentException($"{path}.enum: expected a non-empty array");
            }
            return new EnumSchema(values.Select(x => x?.ToJsonString() ?? "null").ToArray());
        }
        string alternativesKey = o.ContainsKey("anyOf") ? "anyOf" : "oneOf";
        if (o[alternativesKey] is { } alternativesNode)
        {
            if (alternativesNode is not JsonArray alternatives || alternatives.Count == 0)
            {
                throw new ArgumentException($"{path}.{alternativesKey}: expected a non-empty array of schemas");
            }
            return new UnionSchema(alternatives.Select((a, i) => CompileNode(a, $"{path}.{alternativesKey}[{i}]", depth + 1)).ToArray());
        }
        JsonNode? type = o["type"];
        if (type is JsonArray types)
        {
            return new UnionSchema(types.Select((t, i) => CompileTyped(o, t is JsonValue tv && tv.TryGetValue(out string? s) ? s : throw new ArgumentException($"{path}.type[{i}]: expected a type name"), path, depth)).ToArray());
        }
        if (type is null)
        {
            return o.ContainsKey("properties") ? CompileTyped(o, "object", path, depth) : AnySchema.Instance;
        }
        if (type is not JsonValue typeValue || !typeValue.TryGetValue(out string? typeName))
        {
            throw new ArgumentException($"{path}.type: expected a type name or a list of them, got {Kind(type)}");
        }
        return CompileTyped(o, typeName, path, depth);
    }

    private static SchemaNode CompileTyped(JsonObject o, string type, string path, int depth)
    {
        switch (type)
        {
            case "string":
                return StringSchema.Instance;
            case "number":
                return NumberSchema.Number;
            case "integer":
                return NumberSchema.Integer;
            case "boolean":
                return new EnumSchema(["true", "false"]);
            case "null":
                return new EnumSchema(["null"]);
            case "array":
                SchemaNode items = o["items"] is { } itemsNode ? CompileNode(itemsNode, $"{path}.items", depth + 1) : AnySchema.Instance;
                int min = ReadCount(o, "minItems", path) ?? 0;
                int? max = ReadCount(o, "maxItems", path);
                if (max < min)
                {
                    throw new ArgumentException($"{path}: maxItems {max} is below minItems {min}");
                }
                return new ArraySchema(items, min, max);
            case "object":
                var properties = new Dictionary<string, SchemaNode>(StringComparer.Ordinal);
                if (o["properties"] is { } propertiesNode)
                {
                    if (propertiesNode is not JsonObject props)
                    {
                        throw new ArgumentException($"{path}.properties: expected an object of schemas, got {Kind(propertiesNode)}");
                    }
                    foreach ((string name, JsonNode? schema) in props)
                    {
                        properties[name] = CompileNode(schema, $"{path}.properties.{name}", depth + 1);
                    }
                }
                var required = new List<string>();
                if (o["required"] is { } requiredNode)
                {
                    if (requiredNode is not JsonArray list)
                    {
                        throw new ArgumentException($"{path}.required: expected an array of property names");
                    }
                    foreach (JsonNode? item in list)
                    {
                        if (item is not JsonValue iv || !iv.TryGetValue(out string? name))
                        {
                            throw new ArgumentException($"{path}.required: expected property names (strings)");
                        }
                        required.Add(name);
                    }
                }
                SchemaNode? additional = o["additionalProperties"] switch
                {
                    null => properties.Count == 0 ? AnySchema.Instance : null,
                    JsonValue av when av.TryGetValue(out bool allowed) => allowed ? AnySchema.Instance : null,
                    JsonNode other => CompileNode(other, $"{path}.additionalProperties", depth + 1),
                };
                foreach (string name in required)
                {
                    if (!properties.ContainsKey(name) && additional is null)
                    {
                        throw new ArgumentException($"{path}.required: \"{name}\" is required but not among the properties, and no additional properties are allowed");
                    }
                }
                return new ObjectSchema(properties, required, additional);
            default:
                throw new ArgumentException($"{path}.type: unknown type \"{type}\"; expected string, number, integer, boolean, null, array or object");
        }
    }

    private static int? ReadCount(JsonObject o, string key, string path)
    {
        if (o[key] is not { } node)
        {
            return null;
        }
        return node is JsonValue v && v.TryGetValue(out int n) && n >= 0 ? n : throw new ArgumentException($"{path}.{key}: expected a non-negative integer");
    }

    private static string Kind(JsonNode? node) => node switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        _ => node.GetValueKind().ToString().ToLowerInvariant(),
    };
}

internal abstract class SchemaNode;

internal sealed class AnySchema : SchemaNode
{
    public static AnySchema Instance { get; } = new();
}

internal sealed class StringSchema : SchemaNode
{
    public static StringSchema Instance { get; } = new();
}

internal sealed class NumberSchema(bool integer) : SchemaNode
{
    public static NumberSchema Number { get; } = new(false);
    public static NumberSchema Integer { get; } = new(true);
    public bool IsInteger => integer;
}

/// <summary>One of fixed JSON texts (enum, const, booleans, null), compact.</summary>
internal sealed class EnumSchema(string[] literals) : SchemaNode
{
    public byte[][] Literals { get; } = literals.Select(Encoding.UTF8.GetBytes).ToArray();
}

internal sealed class UnionSchema(SchemaNode[] alternatives) : SchemaNode
{
    public SchemaNode[] Alternatives => alternatives;
}

internal sealed class ArraySchema(SchemaNode items, int minItems, int? maxItems) : SchemaNode
{
    public SchemaNode Items => items;
    public int MinItems => minItems;
    public int? MaxItems => maxItems;
}

/// <summary><paramref name="additional"/> null: only the named properties.</summary>
internal sealed class ObjectSchema(Dictionary<string, SchemaNode> properties, List<string> required, SchemaNode? additional) : SchemaNode
{
    public Dictionary<string, SchemaNode> Properties => properties;
    public List<string> Required => required;
    public SchemaNode? Additional => additional;
}

/// <summary>A pushdown recognizer of compact JSON under a schema, byte by byte; cloned to try a token.</summary>
internal sealed class JsonMatcher
{
    private const int MaxDepth = 24;
    private readonly List<Frame> _stack;
    private readonly List<byte> _accepted;

    public JsonMatcher(SchemaNode root)
    {
        _stack = [new ValueFrame(root)];
        _accepted = [];
    }

    private JsonMatcher(List<Frame> stack, List<byte> accepted)
    {
        _stack = stack;
        _accepted = accepted;
    }

    public IReadOnlyList<byte> Accepted => _accepted;

    /// <summary>The value is complete: nothing is open, or only a top-level number that could still grow.</summary>
    public bool IsComplete => _stack.Count == 0 || (_stack.Count == 1 && _stack[0] is NumberFrame n && n.Accepting);

    public JsonMatcher Clone() => new(_stack.Select(f => f.Clone()).ToList(), new List<byte>(_accepted));

    public bool TryFeed(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            if (!Feed(b))
            {
                return false;
            }
            _accepted.Add(b);
        }
        return true;
    }

    private bool Feed(byte b)
    {
        while (true)
        {
            if (_stack.Count == 0)
            {
                return false;
            }
            Frame top = _stack[^1];
            switch (top)
            {
                case ValueFrame value:
                    _stack.RemoveAt(_stack.Count - 1);
                    return StartValue(value.Schema, b, value.IsKey);
                case LiteralFrame literal:
                {
                    bool finished = literal.Candidates.Any(c => c.Length == literal.Position);
                    literal.Candidates.RemoveAll(c => c.Length <= literal.Position || c[literal.Position] != b);
                    if (literal.Candidates.Count == 0)
                    {
                        if (!finished)
                        {
                            return false;
                        }
                        // A shorter enum value (1 of [1, 10]) ended here: the byte belongs to the enclosing value.
                        _stack.RemoveAt(_stack.Count - 1);
                        continue;
                    }
                    literal.Position++;
                    if (literal.Candidates.Any(c => c.Length == literal.Position))
                    {
                        // Literals here never prefix one another except through a longer enum value;
                        // a finished one ends the frame as soon as no longer candidate remains.
                        if (literal.Candidates.All(c => c.Length == literal.Position))
                        {
                            _stack.RemoveAt(_stack.Count - 1);
                            if (literal.IsKey)
                            {
                                KeyDone(Encoding.UTF8.GetString(literal.Candidates[0], 0, literal.Candidates[0].Length - 1));
                            }
                        }
                    }
                    return true;
                }
                case StringFrame str:
                    return FeedString(str, b);
                case NumberFrame number:
                    if (number.Feed(b))
                    {
                        return true;
                    }
                    if (!number.Accepting)
                    {
                        return false;
                    }
                    _stack.RemoveAt(_stack.Count - 1);
                    continue; // the byte belongs to the enclosing value
                case ObjectFrame obj:
                    return FeedObject(obj, b);
                case ArrayFrame array:
                    if (array.State == ArrayState.AfterValue)
                    {
                        if (b == ']')
                        {
                            _stack.RemoveAt(_stack.Count - 1);
                            return array.Count >= array.Schema.MinItems;
                        }
                        if (b == ',' && (array.Schema.MaxItems is not int max || array.Count < max))
                        {
                            array.State = ArrayState.AfterComma;
                            return true;
                        }
                        return false;
                    }
                    if (b == ']' && array.State == ArrayState.Open)
                    {
                        _stack.RemoveAt(_stack.Count - 1);
                        return array.Schema.MinItems == 0;
                    }
                    if (array.State == ArrayState.Open && array.Schema.MaxItems == 0)
                    {
                        return false;
                    }
                    array.State = ArrayState.AfterValue;
                    array.Count++;
                    _stack.Add(new ValueFrame(array.Schema.Items));
                    continue;
                default:
                    return false;
            }
        }
    }

    private bool StartValue(SchemaNode schema, byte b, bool isKey)
    {
        int depth = _stack.Count(f => f is ObjectFrame or ArrayFrame);
        switch (schema)
        {
            case UnionSchema union:
                foreach (SchemaNode alternative in union.Alternatives)
                {
                    JsonMatcher trial = Clone();
                    if (trial.StartValue(alternative, b, isKey))
                    {
                        _stack.Clear();
                        _stack.AddRange(trial._stack);
                        return true;
                    }
                }
                return false;
            case EnumSchema e:
                _stack.Add(new LiteralFrame(e.Literals.ToList(), 0, isKey));
                return Feed(b);
            case StringSchema:
                if (b != '"')
                {
                    return false;
                }
                _stack.Add(new StringFrame(isKey ? new List<byte>() : null));
                return true;
            case NumberSchema n:
                _stack.Add(new NumberFrame(n.IsInteger));
                if (_stack[^1] is NumberFrame frame && frame.Feed(b))
                {
                    return true;
                }
                _stack.RemoveAt(_stack.Count - 1);
                return false;
            case ArraySchema a:
                if (b != '[' || depth >= MaxDepth)
                {
                    return false;
                }
                _stack.Add(new ArrayFrame(a));
                return true;
            case ObjectSchema o:
                if (b != '{' || depth >= MaxDepth)
                {
                    return false;
                }
                _stack.Add(new ObjectFrame(o));
                return true;
            case AnySchema:
                return b switch
                {
                    (byte)'{' => StartValue(new ObjectSchema(new Dictionary<string, SchemaNode>(), [], AnySchema.Instance), b, isKey),
                    (byte)'[' => StartValue(new ArraySchema(AnySchema.Instance, 0, null), b, isKey),
                    (byte)'"' => StartValue(StringSchema.Instance, b, isKey),
                    (byte)'t' or (byte)'f' or (byte)'n' => StartValue(new EnumSchema(["true", "false", "null"]), b, isKey),
                    _ => StartValue(NumberSchema.Number, b, isKey),
                };
            default:
                return false;
        }
    }

    private bool FeedString(StringFrame str, byte b)
    {
        switch (str.State)
        {
            case StringState.Escape:
                if (b == 'u')
                {
                    str.State = StringState.Unicode;
                    str.HexLeft = 4;
                    return true;
                }
                if ("\"\\/bfnrt".Contains((char)b))
                {
                    str.State = StringState.Normal;
                    str.Key?.Add(b);
                    return true;
                }
                return false;
            case StringState.Unicode:
                if (!char.IsAsciiHexDigit((char)b))
                {
                    return false;
                }
                if (--str.HexLeft == 0)
                {
                    str.State = StringState.Normal;
                }
                return true;
            default:
                if (b == '"')
                {
                    _stack.RemoveAt(_stack.Count - 1);
                    if (str.Key is not null)
                    {
                        KeyDone(Encoding.UTF8.GetString(str.Key.ToArray()));
                    }
                    return true;
                }
                if (b == '\\')
                {
                    str.State = StringState.Escape;
                    return true;
                }
                if (b < 0x20)
                {
                    return false;
                }
                str.Key?.Add(b);
                return true;
        }
    }

    private bool FeedObject(ObjectFrame obj, byte b)
    {
        switch (obj.State)
        {
            case ObjectState.Open or ObjectState.AfterComma:
                if (b == '}' && obj.State == ObjectState.Open)
                {
                    return CloseObject(obj);
                }
                if (b != '"')
                {
                    return false;
                }
                var remaining = obj.Schema.Properties.Keys.Where(k => !obj.Seen.Contains(k)).ToList();
                obj.State = ObjectState.InKey;
                if (obj.Schema.Additional is not null)
                {
                    _stack.Add(new StringFrame(new List<byte>()));
                    return true;
                }
                if (remaining.Count == 0)
                {
                    return false;
                }
                // Known names only: the key's bytes after the opening quote, closing quote included.
                _stack.Add(new LiteralFrame(remaining.Select(k => Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(k))[1..]).ToList(), 0, isKey: true));
                return true;
            case ObjectState.Colon:
                if (b != ':')
                {
                    return false;
                }
                obj.State = ObjectState.AfterValue;
                SchemaNode valueSchema = obj.Schema.Properties.TryGetValue(obj.CurrentKey!, out SchemaNode? s) ? s : obj.Schema.Additional ?? AnySchema.Instance;
                _stack.Add(new ValueFrame(valueSchema));
                return true;
            case ObjectState.AfterValue:
                if (b == '}')
                {
                    return CloseObject(obj);
                }
                if (b == ',')
                {
                    bool more = obj.Schema.Additional is not null || obj.Schema.Properties.Keys.Any(k => !obj.Seen.Contains(k));
                    obj.State = ObjectState.AfterComma;
                    return more;
                }
                return false;
            default:
                return false;
        }
    }

    private bool CloseObject(ObjectFrame obj)
    {
        if (obj.Schema.Required.Any(r => !obj.Seen.Contains(r)))
        {
            return false;
        }
        _stack.RemoveAt(_stack.Count - 1);
        return true;
    }

    private void KeyDone(string key)
    {
        if (_stack[^1] is ObjectFrame obj)
        {
            obj.CurrentKey = key;
            obj.Seen.Add(key);
            obj.State = ObjectState.Colon;
        }
    }

    private abstract class Frame
    {
        public abstract Frame Clone();
    }

    private sealed class ValueFrame(SchemaNode schema, bool isKey = false) : Frame
    {
        public SchemaNode Schema => schema;
        public bool IsKey => isKey;
        public override Frame Clone() => this; // immutable
    }

    private sealed class LiteralFrame(List<byte[]> candidates, int position, bool isKey) : Frame
    {
        public List<byte[]> Candidates { get; } = candidates;
        public int Position { get; set; } = position;
        public bool IsKey => isKey;
        public override Frame Clone() => new LiteralFrame(new List<byte[]>(Candidates), Position, isKey);
    }

    private enum StringState { Normal, Escape, Unicode }

    private sealed class StringFrame(List<byte>? key) : Frame
    {
        public List<byte>? Key { get; } = key;
        public StringState State { get; set; }
        public int HexLeft { get; set; }
        public override Frame Clone() => new StringFrame(Key is null ? null : new List<byte>(Key)) { State = State, HexLeft = HexLeft };
    }

    private sealed class NumberFrame(bool integer) : Frame
    {
        // 0 start, 1 after '-', 2 after leading 0, 3 int digits, 4 after '.', 5 fraction digits, 6 after e, 7 after e sign, 8 exponent digits
        private int _state;

        public bool Accepting => _state is 2 or 3 or 5 or 8;

        public bool Feed(byte b)
        {
            bool digit = b is >= (byte)'0' and <= (byte)'9';
            int next = _state switch
            {
                0 when b == '-' => 1,
                0 or 1 when b == '0' => 2,
                0 or 1 when digit => 3,
                3 when digit => 3,
                2 or 3 when b == '.' && !integer => 4,
                4 or 5 when digit => 5,
                2 or 3 or 5 when (b == 'e' || b == 'E') && !integer => 6,
                6 when b == '+' || b == '-' => 7,
                6 or 7 or 8 when digit => 8,
                _ => -1,
            };
            if (next < 0)
            {
                return false;
            }
            _state = next;
            return true;
        }

        public override Frame Clone() => new NumberFrame(integer) { _state = _state };
    }

    private enum ArrayState { Open, AfterValue, AfterComma }

    private sealed class ArrayFrame(ArraySchema schema) : Frame
    {
        public ArraySchema Schema => schema;
        public ArrayState State { get; set; }
        public int Count { get; set; }
        public override Frame Clone() => new ArrayFrame(schema) { State = State, Count = Count };
    }

    private enum ObjectState { Open, InKey, Colon, AfterValue, AfterComma }

    private sealed class ObjectFrame(ObjectSchema schema) : Frame
    {
        public ObjectSchema Schema => schema;
        public ObjectState State { get; set; }
        public string? CurrentKey { get; set; }
        public HashSet<string> Seen { get; private init; } = new(StringComparer.Ordinal);
        public override Frame Clone() => new ObjectFrame(schema) { State = State, CurrentKey = CurrentKey, Seen = new HashSet<string>(Seen, StringComparer.Ordinal) };
    }
}
