using MimoSharp.Models.Configuration;
using MimoSharp.Models.Creation;

namespace MimoSharp.Runtime.Tests;

/// <summary>Random models written once per test run.</summary>
internal static class TestModels
{
    private static readonly string s_root = Path.Combine(Path.GetTempPath(), "mimosharp-runtime-tests-" + Environment.ProcessId);
    private static readonly Dictionary<string, string> s_written = new();
    private static readonly Lock s_lock = new();

    public static string Write(string name, Func<MimoConfig, MimoConfig> edit, ulong seed = 1)
    {
        lock (s_lock)
        {
            if (!s_written.TryGetValue(name, out string? dir))
            {
                dir = Path.Combine(s_root, name);
                RandomModelWriter.Write(dir, edit(ModelPresets.Get("tiny")).Validate(), new RandomModelOptions { Seed = seed });
                s_written[name] = dir;
            }
            return dir;
        }
    }

    /// <summary>The tiny preset with a short window (so sequences cross it).</summary>
    public static string Tiny(ulong seed = 1) => Write($"tiny-{seed}", c => c with { SlidingWindow = 8, SlidingWindowSize = 8 }, seed);

    /// <summary>A 16-token vocabulary: random drafts are often accepted, and distributions are small enough to enumerate.</summary>
    public static string SmallVocab() => Write("vocab16", c => c with { VocabSize = 16, SlidingWindow = 8, SlidingWindowSize = 8 }, seed: 3);
}
