using System.IO.Compression;

namespace MimoSharp.Tests;

/// <summary>Paths of the repository's test data, shared by every test project (linked in by tests/Directory.Build.props).</summary>
internal static class TestPaths
{
    private static readonly Lazy<string> s_qwen3 = new(ExtractQwen3Tokenizer);

    /// <summary>The repository root (the folder holding MimoSharp.slnx).</summary>
    public static string Root { get; } = FindRoot();

    public static string TinyRandom => Path.Combine(Root, "testdata", "mimo-tiny-random");

    public static string TinyRandomModel => Path.Combine(TinyRandom, "model");

    public static string TokenizerData => Path.Combine(Root, "testdata", "tokenizer");

    /// <summary>A temp directory holding the real Qwen3 tokenizer.json (stored gzipped) and tokenizer_config.json.</summary>
    public static string Qwen3TokenizerDirectory => s_qwen3.Value;

    private static string FindRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "MimoSharp.slnx")))
        {
            dir = Path.GetDirectoryName(dir);
        }
        return dir ?? throw new InvalidOperationException($"cannot find the repository root above {AppContext.BaseDirectory}");
    }

    private static string ExtractQwen3Tokenizer()
    {
        string source = Path.Combine(TokenizerData, "qwen3");
        string dir = Path.Combine(Path.GetTempPath(), $"mimosharp-qwen3-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(source, "tokenizer.json.gz")), CompressionMode.Decompress))
        using (var target = File.Create(Path.Combine(dir, "tokenizer.json")))
        {
            gz.CopyTo(target);
        }
        File.Copy(Path.Combine(source, "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"), overwrite: true);
        return dir;
    }
}
