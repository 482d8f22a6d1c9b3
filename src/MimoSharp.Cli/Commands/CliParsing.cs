using System.Globalization;

namespace MimoSharp.Cli.Commands;

/// <summary>Parsing helpers shared by commands; errors name the option and what was expected.</summary>
internal static class CliParsing
{
    /// <summary>JSON for people and scripts: text as written (no \u003C for '&lt;'), as other CLIs print it.</summary>
    public static readonly System.Text.Json.JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Parses "1,2,3" (spaces allowed) into token ids.</summary>
    public static int[] ParseIds(string text, string option = "--ids")
    {
        string[] parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
        {
            throw new ArgumentException($"{option} is empty; expected comma-separated token ids such as 1,2,3");
        }
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[i]) || ids[i] < 0)
            {
                throw new ArgumentException($"{option}: item {i + 1} \"{parts[i]}\" is not a non-negative integer token id");
            }
        }
        return ids;
    }

    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{value:F2} {units[unit]}");
    }

    public static string FormatCount(long count) => count switch
    {
        >= 1_000_000_000 => string.Create(CultureInfo.InvariantCulture, $"{count / 1e9:F2}B"),
        >= 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{count / 1e6:F2}M"),
        >= 1_000 => string.Create(CultureInfo.InvariantCulture, $"{count / 1e3:F2}K"),
        _ => count.ToString(CultureInfo.InvariantCulture),
    };
}
