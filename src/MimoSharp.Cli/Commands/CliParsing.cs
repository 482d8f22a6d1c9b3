using System.Globalization;
using MimoSharp.Models;
using MimoSharp.Tensors.Storage;
using MimoSharp.Tokenization;
using System.CommandLine;

namespace MimoSharp.Cli.Commands;

/// <summary>Parsing helpers shared by commands; errors name the option and what was expected.</summary>
internal static class CliParsing
{
    /// <summary>
    /// The trained default model: models/default of the repository, which the build copies next to
    /// mimo.dll (so `dotnet run`, a build in any folder and an installed dotnet tool all find it);
    /// MIMO_DEFAULT_MODEL points elsewhere.
    /// </summary>
    public static string DefaultModelDirectory =>
        Environment.GetEnvironmentVariable("MIMO_DEFAULT_MODEL") is { Length: > 0 } dir ? dir : Path.Combine(AppContext.BaseDirectory, "models", "default");

    /// <summary>--model, optional: left out, the default model is used.</summary>
    public static Option<string?> ModelOption(string description = "Model directory") =>
        new("--model") { Description = $"{description} (default: the trained default model shipped with mimo)" };

    /// <summary>The --model directory, or the default model's; refused when it holds no config.json.</summary>
    public static string ModelDirectory(ParseResult parse, Option<string?> option) => ModelDirectory(parse.GetValue(option), DefaultModelDirectory);

    internal static string ModelDirectory(string? given, string defaultDirectory)
    {
        if (given is not null)
        {
            return given;
        }
        string dir = defaultDirectory;
        if (!File.Exists(Path.Combine(dir, "config.json")))
        {
            throw new ArgumentException($"--model was left out and the default model is missing: {dir} has no config.json (the build copies the repository's models/default there; MIMO_DEFAULT_MODEL overrides the place). Pass --model DIR");
        }
        return dir;
    }

    /// <summary>JSON for people and scripts: text as written (no \u003C for '&lt;'), as other CLIs print it.</summary>
    public static readonly System.Text.Json.JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Parses "1,2,3" (spaces allowed) into token ids; an empty item ("1,,2", "1,2,") is refused.</summary>
    public static int[] ParseIds(string text, string option = "--ids")
    {
        if (text.Trim().Length == 0)
        {
            throw new ArgumentException($"{option} is empty; expected comma-separated token ids such as 1,2,3");
        }
        string[] parts = text.Split(',', StringSplitOptions.TrimEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (parts[i].Length == 0)
            {
                throw new ArgumentException($"{option}: item {i + 1} of \"{text}\" is empty; expected comma-separated token ids such as 1,2,3");
            }
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]))
            {
                throw new ArgumentException($"{option}: item {i + 1} \"{parts[i]}\" is not a token id; expected an integer in 0..2147483647");
            }
        }
        return ids;
    }

    /// <summary>
    /// Checks, before any work, that <paramref name="path"/> can be written as a new or replaced file: its
    /// directory exists and takes a new file, and the path is not a directory. Returns the full path.
    /// </summary>
    public static string CheckOutputFile(string path, string option)
    {
        string full = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(full)!;
        if (Directory.Exists(full))
        {
            throw new ArgumentException($"{option} {path}: is a directory; expected a file path");
        }
        if (!Directory.Exists(directory))
        {
            throw new ArgumentException($"{option} {path}: the directory {directory} does not exist; create it first");
        }
        ProbeWritable(directory, option, path);
        return full;
    }

    /// <summary>
    /// Checks, before any work, that <paramref name="path"/> is a new or empty directory that can be written
    /// (creating it and its parents), so a model is never written over another.
    /// </summary>
    /// <param name="requiredBytes">Bytes the work will write there: refused, before the directory is made, when the file system lacks them.</param>
    public static string CheckNewOutputDirectory(string path, string option, string what, long requiredBytes = 0)
    {
        string full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            throw new ArgumentException($"{option} {path}: is a file; expected a new or empty directory for {what}");
        }
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
        {
            throw new ArgumentException($"{option} {path}: already exists and is not empty; {what} is written only into a new or empty directory (nothing was overwritten)");
        }
        if (requiredBytes > 0)
        {
            CheckFreeSpace(full, requiredBytes, option);
        }
        try
        {
            Directory.CreateDirectory(full);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{option} {path}: cannot create the directory ({InputFile.Describe(ex)})");
        }
        ProbeWritable(full, option, path);
        return full;
    }

    /// <summary>Writes through a temporary file beside <paramref name="path"/> and renames it: a failed write leaves no partial file.</summary>
    public static void WriteAtomically(string path, string option, Action<string> write)
    {
        string temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Environment.ProcessId}.partial");
        try
        {
            write(temp);
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            File.Delete(temp);
            throw new ArgumentException($"{option} {path}: cannot be written ({InputFile.Describe(ex)})");
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>--shard-mb in bytes: positive, and small enough that the bytes fit in 64 bits.</summary>
    public static long? ShardBytes(long? megabytes) => megabytes switch
    {
        null => null,
        long mb when mb is > 0 and <= long.MaxValue >> 20 => mb << 20,
        long mb => throw new ArgumentException($"--shard-mb is {mb}; expected 1..{long.MaxValue >> 20}"),
    };

    /// <summary>Refuses to start a write of <paramref name="bytes"/> that the file system of <paramref name="directory"/> cannot hold.</summary>
    public static void CheckFreeSpace(string directory, long bytes, string option)
    {
        long free;
        try
        {
            string? existing = directory;
            while (existing is not null && !Directory.Exists(existing))
            {
                existing = Path.GetDirectoryName(existing);
            }
            free = new DriveInfo(existing ?? directory).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return; // the space cannot be told (unusual file systems): the write reports a full disk itself
        }
        // 1% and 64 MiB of headroom: headers, the index, the tokenizer and other writers.
        long needed = bytes + bytes / 100 + (64L << 20);
        if (free < needed)
        {
            throw new ArgumentException(
                $"{option} {directory}: the model needs {FormatBytes(bytes)} but the file system has {FormatBytes(free)} free; nothing was written " +
                "(use --config-only to write only config.json, or --layers N for a few layers)");
        }
    }

    /// <summary>A progress callback printing "writing: 12.50 GiB of 292.00 GiB (4%)" each whole percent.</summary>
    public static Action<long> ProgressPrinter(TextWriter notes, long total, string what)
    {
        int lastPercent = -1;
        return written =>
        {
            int percent = (int)(written * 100 / Math.Max(total, 1));
            if (percent != lastPercent)
            {
                lastPercent = percent;
                notes.WriteLine($"{what}: {FormatBytes(written)} of {FormatBytes(total)} ({percent}%)");
                notes.Flush();
            }
        };
    }

    private static void ProbeWritable(string directory, string option, string path)
    {
        string probe = Path.Combine(directory, $".mimo-write-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{option} {path}: cannot write in {directory} ({InputFile.Describe(ex)})");
        }
    }

    /// <summary>
    /// Text from a model made safe for a terminal: control characters other than newline and tab (ESC, CR,
    /// BS, NUL, DEL, the C1 controls) are shown as \x1B-style escapes instead of acting on the screen.
    /// </summary>
    public static string TerminalSafe(string text)
    {
        int i = 0;
        while (i < text.Length && !IsUnsafeControl(text[i]))
        {
            i++;
        }
        if (i == text.Length)
        {
            return text;
        }
        var safe = new System.Text.StringBuilder(text.Length + 8);
        safe.Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (IsUnsafeControl(c))
            {
                safe.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:X2}");
            }
            else
            {
                safe.Append(c);
            }
        }
        return safe.ToString();
    }

    private static bool IsUnsafeControl(char c) => c != '\n' && c != '\t' && (c < 0x20 || c is >= (char)0x7F and <= (char)0x9F);

    /// <summary>--check-tensors: scan every tensor at load (mimo check's scan) and refuse a corrupt checkpoint.</summary>
    public static Option<bool> CheckTensorsOption() => new("--check-tensors")
    {
        Description = "Scan every tensor at load (NaN/Inf, E4M3 NaN codes, bad scales) and refuse a corrupt checkpoint, as `mimo check` does",
    };

    /// <summary>
    /// The model's tokenizer (a byte-level one when it ships none), refused when it has ids beyond the
    /// model's vocabulary: those would be fed to the embedding or sampled as nothing.
    /// </summary>
    public static MimoTokenizer LoadTokenizer(string directory, MimoModel model)
    {
        MimoTokenizer tokenizer = ByteLevelTokenizerWriter.LoadOrByteLevel(directory, model.VocabSize, out bool byteLevel);
        if (!byteLevel && tokenizer.VocabularySize > model.VocabSize)
        {
            throw new ArgumentException(
                $"{Path.Combine(directory, "tokenizer.json")}: holds token ids up to {tokenizer.VocabularySize - 1}, beyond the model's vocabulary (\"vocab_size\" {model.VocabSize} in {model.Config.Source}); expected ids below {model.VocabSize}");
        }
        return tokenizer;
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
