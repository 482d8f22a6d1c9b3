using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using MimoSharp.Cli.Commands;
using MimoSharp.Models.Configuration;
using MimoSharp.Models.Creation;
using MimoSharp.Tokenization;

namespace MimoSharp.Cli.Tests.Fuzz;

/// <summary>
/// The fuzz suite's tools: a tiny random model (2 layers: one dense, one MoE; one MTP head) written once,
/// copies of it to break, header and config editors, and a bounded run of the CLI (its own thread, a
/// time limit, and the bytes that thread allocated) with the checks every error must pass.
/// </summary>
internal static class FuzzKit
{
    private static readonly string s_root = Path.Combine(Path.GetTempPath(), $"mimosharp-fuzz-{Environment.ProcessId}");
    private static readonly Lazy<string> s_base = new(WriteBase);

    /// <summary>The .NET wordings that must never reach a user (issue 11's list, and stack traces).</summary>
    public static readonly string[] RawRuntimeText =
    [
        "Arithmetic operation resulted in an overflow", "An item with the same key has already been added",
        "requires an element of type", "Cannot transcode invalid UTF-8", "is an invalid start of a value. LineNumber",
        "positive capacity must be specified", "Could not find file", "Could not find a part of the path",
        "System.Nullable", "System.Int32", "System.Single", "MimoSharp.Models.", "(Parameter '", "threadCount",
        "must be a non-negative and non-zero value", "Object reference not set", "Index was outside the bounds",
        "   at ", "Exception:", "The given key", "Specified argument was out of the range",
    ];

    /// <summary>Limit for one command: far above any case's real cost, there only to turn a hang into a failure.</summary>
    public static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(90);

    /// <summary>Bytes one case may allocate on its thread (the model is 0.2 MB; the OOM cases asked for tens of GB).</summary>
    public const long MemoryLimit = 512L << 20;

    public static MimoConfig BaseConfig => CreateRandomCommand.KeepLayers(ModelPresets.Get("tiny"), 2);

    /// <summary>A fresh copy of the base model (config.json, model.safetensors, tokenizer files).</summary>
    public static string CopyOfModel(string name)
    {
        string dir = NewDirectory(name);
        foreach (string file in Directory.EnumerateFiles(s_base.Value))
        {
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        }
        return dir;
    }

    public static string NewDirectory(string name)
    {
        string dir = Path.Combine(s_root, $"{name}-{Guid.NewGuid():N}"[..Math.Min(name.Length + 9, 60)]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string WriteBase()
    {
        string dir = Path.Combine(s_root, "base");
        RandomModelWriter.Write(dir, BaseConfig, new RandomModelOptions { MtpHeads = 1, Seed = 7 });
        ByteLevelTokenizerWriter.Write(dir, BaseConfig.VocabSize);
        return dir;
    }

    public static string SafetensorsPath(string dir) => Path.Combine(dir, "model.safetensors");

    /// <summary>The header JSON text and the data section of a safetensors file.</summary>
    public static (string Header, byte[] Data) ReadSafetensors(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long length = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return (Encoding.UTF8.GetString(bytes, 8, (int)length), bytes[(8 + (int)length)..]);
    }

    /// <summary>Writes a safetensors file from header bytes (any bytes: the fuzz writes broken ones) and data.</summary>
    public static void WriteSafetensors(string path, byte[] header, byte[] data, ulong? declaredLength = null)
    {
        using var stream = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, declaredLength ?? (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        stream.Write(data);
    }

    /// <summary>Rewrites the header of <paramref name="dir"/>'s model.safetensors with <paramref name="edit"/>.</summary>
    public static void EditHeader(string dir, Action<JsonObject> edit)
    {
        (string header, byte[] data) = ReadSafetensors(SafetensorsPath(dir));
        JsonObject json = JsonNode.Parse(header)!.AsObject();
        edit(json);
        WriteSafetensors(SafetensorsPath(dir), Encoding.UTF8.GetBytes(json.ToJsonString()), data);
    }

    /// <summary>Overwrites bytes of tensor <paramref name="name"/>'s data with <paramref name="fill"/>(index).</summary>
    public static void EditTensorBytes(string dir, string name, Func<int, byte> fill, int? count = null)
    {
        string path = SafetensorsPath(dir);
        (string header, byte[] data) = ReadSafetensors(path);
        JsonArray offsets = JsonNode.Parse(header)![name]!["data_offsets"]!.AsArray();
        int begin = (int)offsets[0]!.GetValue<long>(), end = (int)offsets[1]!.GetValue<long>();
        for (int i = 0; i < Math.Min(count ?? end - begin, end - begin); i++)
        {
            data[begin + i] = fill(i);
        }
        WriteSafetensors(path, Encoding.UTF8.GetBytes(header), data);
    }

    public static void EditConfig(string dir, Action<JsonObject> edit)
    {
        string path = Path.Combine(dir, "config.json");
        JsonObject json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    /// <summary>Makes a FIFO (mkfifo); false where the platform has none.</summary>
    public static bool MakeFifo(string path)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return false;
        }
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("mkfifo", [path]) { RedirectStandardError = true })!;
        process.WaitForExit();
        return process.ExitCode == 0;
    }

    public sealed record Outcome(int Code, string Out, string Err, long AllocatedBytes, TimeSpan Elapsed);

    /// <summary>Runs the CLI in-process on its own thread, bounded in time; fails the test on a hang or on too much memory.</summary>
    public static Outcome Run(params string[] args) => Run(null, args);

    public static Outcome Run(TextReader? input, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = -1;
        long allocated = 0;
        Exception? escaped = null;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var thread = new Thread(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                code = Program.Run(args, output, error, input);
            }
            catch (Exception ex)
            {
                escaped = ex;
            }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        }, maxStackSize: 16 << 20) { IsBackground = true };
        thread.Start();
        if (!thread.Join(TimeLimit))
        {
            Assert.Fail($"mimo {string.Join(' ', args)} still ran after {TimeLimit.TotalSeconds} s (a hang)");
        }
        Assert.True(escaped is null, $"mimo {string.Join(' ', args)} let an exception escape: {escaped}");
        Assert.True(allocated < MemoryLimit, $"mimo {string.Join(' ', args)} allocated {allocated / 1e6:F0} MB on its thread, over the {MemoryLimit >> 20} MiB bound");
        return new Outcome(code, output.ToString(), error.ToString(), allocated, watch.Elapsed);
    }

    /// <summary>
    /// The command failed with one clear error line: exit code 1, "error: " first, none of the runtime's own
    /// wording, and every one of <paramref name="mentions"/> (the file, key or flag, and what was expected).
    /// </summary>
    public static string AssertClearError(Outcome outcome, params string[] mentions)
    {
        Assert.True(outcome.Code == 1, $"expected exit code 1, got {outcome.Code}; stdout: {outcome.Out}; stderr: {outcome.Err}");
        string line = outcome.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(l => l.StartsWith("error: ", StringComparison.Ordinal)) ?? "";
        Assert.True(line.Length > 0, $"no \"error: \" line on stderr: {outcome.Err}");
        AssertNoRawText(outcome.Err);
        foreach (string mention in mentions)
        {
            Assert.True(line.Contains(mention, StringComparison.Ordinal), $"the error should mention \"{mention}\": {line}");
        }
        return line;
    }

    public static void AssertNoRawText(string message)
    {
        foreach (string raw in RawRuntimeText)
        {
            Assert.False(message.Contains(raw, StringComparison.Ordinal), $"raw runtime text \"{raw}\" reached the user: {message}");
        }
    }
}
