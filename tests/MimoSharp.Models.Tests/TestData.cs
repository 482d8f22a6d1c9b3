namespace MimoSharp.Models.Tests;

/// <summary>Paths of the repository's test data (testdata/ at the repo root).</summary>
internal static class TestData
{
    public static string Root { get; } = FindRoot();

    public static string TinyRandom => Path.Combine(Root, "testdata", "mimo-tiny-random");

    public static string TinyRandomModel => Path.Combine(TinyRandom, "model");

    private static string FindRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null)
        {
            if (File.Exists(Path.Combine(dir, "MimoSharp.slnx")))
            {
                return dir;
            }
            dir = Path.GetDirectoryName(dir);
        }
        throw new InvalidOperationException($"cannot find the repository root above {AppContext.BaseDirectory}");
    }
}
