using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using MimoSharp.Models;
using MimoSharp.Models.Caching;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;

namespace MimoSharp.Cli.Tests.Fuzz;

/// <summary>
/// Property: any random mutation of the safetensors header or of config.json ends, in bounded time and
/// memory, either in a clear error of our own (naming the file, no runtime wording) or in a correct
/// result: finite logits, and for a header mutation that still loads, the very logits of the intact model.
/// </summary>
public sealed class MutationPropertyTests
{
    /// <summary>Cases per property: enough to reach every mutation kind on many tensors and keys, cheap enough for CI.</summary>
    private const int Cases = 300;

    private static readonly int[] Prompt = [1, 2, 3];

    /// <summary>JSON values a careless or hostile writer puts anywhere.</summary>
    private static readonly string[] Values =
    [
        "-1", "0", "1", "2", "3", "7", "64", "2147483647", "2147483648", "-2147483649", "4294967296", "9223372036854775807",
        "18446744073709551616", "1e308", "-1e308", "1e-300", "0.5", "1.5", "-0.0", "\"\"", "\"x\"", "\"F32\"", "\"BF16\"",
        "\"F8_E4M3\"", "\"I64\"", "\"U8\"", "null", "true", "false", "[]", "[0]", "[1, 2]", "[-1, 2]", "[2147483648, 1]",
        "[4294967296, 4294967296]", "[0, 1e3]", "{}", "{\"a\": 1}", "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]", "\"\\u0000\"",
    ];

    private static readonly Lazy<(string Dir, float[] Logits)> s_reference = new(() =>
    {
        string dir = FuzzKit.CopyOfModel("reference");
        return (dir, Logits(dir));
    });

    private static float[] Logits(string dir)
    {
        using MimoModel model = MimoModel.Load(dir);
        SequenceKvCache cache = model.CreateCache(initialCapacity: Prompt.Length);
        var logits = new float[Prompt.Length * model.VocabSize];
        model.Forward([new SequenceInput(cache, Prompt)], new float[Prompt.Length * model.HiddenSize], logits);
        return logits;
    }

    public sealed record Mutation(int Kind, int Target, int Field, int Value, int Position, byte Byte)
    {
        public override string ToString() => $"kind {Kind}, target {Target}, field {Field}, value {Values[Value % Values.Length]}, position {Position}, byte 0x{Byte:X2}";
    }

    private static readonly Gen<Mutation> s_mutations =
        Gen.Select(Gen.Int[0, 9], Gen.Int[0, 10_000], Gen.Int[0, 2], Gen.Int[0, Values.Length - 1], Gen.Int[0, 1_000_000], Gen.Byte,
            (kind, target, field, value, position, b) => new Mutation(kind, target, field, value, position, b));

    [Fact]
    public void AnyHeaderMutationGivesAClearErrorOrTheIntactLogits()
    {
        float[] reference = s_reference.Value.Logits;
        (string header, byte[] data) = FuzzKit.ReadSafetensors(FuzzKit.SafetensorsPath(s_reference.Value.Dir));
        int[] kinds = new int[10];
        s_mutations.Sample(m =>
        {
            kinds[m.Kind]++;
            string dir = FuzzKit.CopyOfModel("header");
            (byte[] newHeader, byte[] newData, ulong? declared) = MutateHeader(header, data, m);
            FuzzKit.WriteSafetensors(FuzzKit.SafetensorsPath(dir), newHeader, newData, declared);
            Bounded(dir, m, logits =>
            {
                // Loaded: the mutation changed nothing the model reads (metadata, unused bytes), so neither may the logits.
                Assert.True(logits.AsSpan().SequenceEqual(reference), $"{m}: loaded but the logits differ from the intact model's");
            });
            Directory.Delete(dir, recursive: true);
        }, iter: Cases, threads: 1);
        Assert.All(kinds, k => Assert.True(k > 0, $"every mutation kind is drawn: {string.Join(",", kinds)}"));
    }

    [Fact]
    public void AnyConfigMutationGivesAClearErrorOrFiniteLogits()
    {
        string configText = File.ReadAllText(Path.Combine(s_reference.Value.Dir, "config.json"));
        s_mutations.Sample(m =>
        {
            string dir = FuzzKit.CopyOfModel("config");
            File.WriteAllBytes(Path.Combine(dir, "config.json"), MutateConfig(configText, m));
            Bounded(dir, m, logits =>
            {
                // A config that still loads may change the numbers (rope_theta, say) but never into NaN or Inf.
                Assert.True(Array.TrueForAll(logits, float.IsFinite), $"{m}: non-finite logits without an error");
            });
            Directory.Delete(dir, recursive: true);
        }, iter: Cases, threads: 1);
    }

    /// <summary>Loads and runs <paramref name="dir"/>: an error of our own that names the file, or logits for <paramref name="check"/>.</summary>
    private static void Bounded(string dir, Mutation m, Action<float[]> check)
    {
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        try
        {
            check(Logits(dir));
        }
        catch (Exception ex) when (ex is ModelConfigException or CheckpointException or NonFiniteActivationException)
        {
            Assert.True(ex.Message.Contains(dir, StringComparison.Ordinal) || ex is NonFiniteActivationException,
                $"{m}: the error does not name the file: {ex.Message}");
            FuzzKit.AssertNoRawText(ex.Message);
        }
        catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
        {
            Assert.Fail($"{m}: {ex.GetType().Name} is not one of our errors: {ex.Message}");
        }
        // Generous bounds that only a runaway (a hang, an allocation sized by a corrupt field) could pass.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"{m}: took {watch.Elapsed.TotalSeconds:F1} s");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        Assert.True(allocated < FuzzKit.MemoryLimit, $"{m}: allocated {allocated / 1e6:F0} MB");
    }

    private static (byte[] Header, byte[] Data, ulong? Declared) MutateHeader(string header, byte[] data, Mutation m)
    {
        JsonObject json = JsonNode.Parse(header)!.AsObject();
        string[] names = json.Select(p => p.Key).Where(k => k != "__metadata__").ToArray();
        string name = names[m.Target % names.Length];
        string[] fields = ["dtype", "shape", "data_offsets"];
        JsonNode value = JsonNode.Parse(Values[m.Value])!;
        byte[] bytes = Encoding.UTF8.GetBytes(json.ToJsonString());
        switch (m.Kind)
        {
            case 0: // a field replaced by any JSON value
                json[name]![fields[m.Field]] = JsonNode.Parse(Values[m.Value]);
                break;
            case 1: // one number of shape or data_offsets replaced
                JsonArray array = json[name]![fields[1 + m.Field % 2]]!.AsArray();
                if (array.Count > 0)
                {
                    array[m.Position % array.Count] = JsonNode.Parse(Values[m.Value]);
                }
                break;
            case 2: // a tensor dropped
                json.Remove(name);
                break;
            case 3: // a tensor renamed
                JsonNode? entry = json[name];
                json.Remove(name);
                json[name + (m.Field == 0 ? "_" : m.Field == 1 ? ".x" : "\u00e9")] = entry;
                break;
            case 4: // a byte of the header text overwritten
                bytes[m.Position % bytes.Length] = m.Byte;
                return (bytes, data, null);
            case 5: // the header cut short
                return (bytes[..(m.Position % bytes.Length)], data, null);
            case 6: // the declared length off by a little or a lot
                return (bytes, data, m.Field == 0 ? (ulong)bytes.Length + (ulong)(m.Position % 64) + 1 : (ulong)bytes.Length - 1 - (ulong)(m.Position % 64));
            case 7: // an entry written twice
                string text = json.ToJsonString();
                return (Encoding.UTF8.GetBytes(text[..^1] + $",\"{name}\":{json[name]!.ToJsonString()}}}"), data, null);
            case 8: // the data section truncated
                return (bytes, data[..(m.Position % data.Length)], null);
            default: // the metadata replaced by any value
                json["__metadata__"] = value;
                break;
        }
        return (Encoding.UTF8.GetBytes(json.ToJsonString()), data, null);
    }

    private static byte[] MutateConfig(string config, Mutation m)
    {
        JsonObject json = JsonNode.Parse(config)!.AsObject();
        JsonObject quantization = json["quantization_config"]!.AsObject();
        string[] keys = json.Select(p => p.Key).ToArray();
        string[] quantKeys = quantization.Select(p => p.Key).ToArray();
        byte[] bytes = Encoding.UTF8.GetBytes(config);
        switch (m.Kind)
        {
            case 0 or 1 or 2: // a key set to any JSON value
                json[keys[m.Target % keys.Length]] = JsonNode.Parse(Values[m.Value]);
                break;
            case 3: // a quantization key set to any value
                quantization[quantKeys[m.Target % quantKeys.Length]] = JsonNode.Parse(Values[m.Value]);
                break;
            case 4: // a key dropped
                json.Remove(keys[m.Target % keys.Length]);
                break;
            case 5: // one entry of a per-layer list changed
                JsonArray list = json[m.Field == 0 ? "hybrid_layer_pattern" : "moe_layer_freq"]!.AsArray();
                list[m.Position % list.Count] = JsonNode.Parse(Values[m.Value]);
                break;
            case 6: // a byte overwritten
                bytes[m.Position % bytes.Length] = m.Byte;
                return bytes;
            case 7: // the file cut short
                return bytes[..(m.Position % bytes.Length)];
            case 8: // a key given twice
                string key = keys[m.Target % keys.Length];
                return Encoding.UTF8.GetBytes(config.TrimEnd()[..^1] + $",\"{key}\":{Values[m.Value]}}}");
            default: // an unknown key (kept, not an error)
                json[$"unknown_{m.Target}"] = JsonNode.Parse(Values[m.Value]);
                break;
        }
        return Encoding.UTF8.GetBytes(json.ToJsonString());
    }
}
