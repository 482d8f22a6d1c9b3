using MimoSharp.Models.Configuration;
using MimoSharp.Models.Creation;

namespace MimoSharp.Models.Tests;

/// <summary>Random checkpoints written once per test run into a temp folder.</summary>
internal static class RandomModels
{
    private static readonly string s_root = Path.Combine(Path.GetTempPath(), "mimosharp-tests-" + Environment.ProcessId);
    private static readonly Dictionary<string, string> s_written = new();
    private static readonly Lock s_lock = new();

    /// <summary>The tiny preset with a short window so that 50-token tests cross it.</summary>
    public static MimoConfig TinyConfig(int window = 8) => ModelPresets.Get("tiny") with { SlidingWindow = window, SlidingWindowSize = window, AttentionChunkSize = window };

    /// <summary>Writes (once) a random model for <paramref name="config"/> and returns its directory.</summary>
    public static string Write(string name, MimoConfig config, RandomModelOptions? options = null)
    {
        lock (s_lock)
        {
            if (s_written.TryGetValue(name, out string? dir))
            {
                return dir;
            }
            dir = Path.Combine(s_root, name);
            RandomModelWriter.Write(dir, config.Validate(), options ?? new RandomModelOptions());
            s_written[name] = dir;
            return dir;
        }
    }

    /// <summary>A fresh empty directory.</summary>
    public static string TempDir(string name)
    {
        string dir = Path.Combine(s_root, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}
