using System.Text;
using System.Text.Json;

namespace MimoSharp.Tensors.Storage;

/// <summary>
/// Reads the files a user hands over (configs, tokenizers, checkpoints) in bounded time and memory:
/// only regular, non-empty files of at most a stated size, read once to their length at open.
/// A FIFO, a socket or a device (/dev/zero) reports length 0 and is refused before it is opened, so
/// nothing ever blocks on a pipe or reads without end. Errors are one line naming the file, what was
/// found and what was expected; the caller wraps them in its own exception type.
/// </summary>
public static class InputFile
{
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Checks <paramref name="path"/> is a regular file of 1..<paramref name="maxBytes"/> bytes; returns its length.</summary>
    /// <param name="what">What the file should be, for messages ("config.json", "a safetensors file").</param>
    public static long Check(string path, string what, long maxBytes, Func<string, Exception> fail)
    {
        if (Directory.Exists(path))
        {
            throw fail($"{path}: is a directory; expected {what}");
        }
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw fail($"{path}: file not found; expected {what}");
        }
        if (info.LinkTarget is not null)
        {
            // A link's own length is its target's name: judge what it points at.
            if (info.ResolveLinkTarget(returnFinalTarget: true) is not FileInfo { Exists: true } target)
            {
                throw fail($"{path}: is a link to nothing readable; expected {what}");
            }
            info = target;
        }
        if (info.Length == 0)
        {
            // Linux reports st_size 0 for FIFOs, sockets and character devices: never open those.
            throw fail($"{path}: is empty or not a regular file (a FIFO, socket or device is refused); expected {what}");
        }
        if (info.Length > maxBytes)
        {
            throw fail($"{path}: is {info.Length} bytes, more than the {maxBytes} bytes {what} may have");
        }
        return info.Length;
    }

    /// <summary>The whole file, checked as <see cref="Check"/> does; exactly the length it had when checked.</summary>
    public static byte[] ReadBytes(string path, string what, long maxBytes, Func<string, Exception> fail)
    {
        long length = Check(path, what, maxBytes, fail);
        var bytes = new byte[length];
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            stream.ReadExactly(bytes);
        }
        catch (EndOfStreamException)
        {
            throw fail($"{path}: shrank while it was read; expected {what} of {length} bytes");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw fail($"{path}: cannot be read ({Describe(ex)}); expected {what}");
        }
        return bytes;
    }

    /// <summary>The file as UTF-8 text (a BOM is dropped); invalid UTF-8 is refused naming the byte offset.</summary>
    public static string ReadText(string path, string what, long maxBytes, Func<string, Exception> fail)
    {
        byte[] bytes = ReadBytes(path, what, maxBytes, fail);
        return DecodeUtf8(bytes, $"{path}", fail);
    }

    /// <summary>Strict UTF-8 decoding; <paramref name="where"/> starts the error message.</summary>
    public static string DecodeUtf8(ReadOnlySpan<byte> bytes, string where, Func<string, Exception> fail)
    {
        int start = bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0;
        try
        {
            return s_strictUtf8.GetString(bytes[start..]);
        }
        catch (DecoderFallbackException ex)
        {
            string at = ex.Index >= 0 ? $" at byte {start + ex.Index}" : "";
            throw fail($"{where}: is not valid UTF-8 text{at}");
        }
    }

    /// <summary>
    /// A JSON syntax or type error as "at line L, column C: reason", without the runtime's CLR type names
    /// and position suffix. <paramref name="expectedByPath"/> may name what a key should hold ("an integer").
    /// </summary>
    /// <param name="text">The JSON text, to name a duplicated key in full (the runtime names a CLR property or cuts the name short).</param>
    public static string DescribeJsonError(JsonException ex, Func<string, string?>? expectedByPath = null, string? text = null)
    {
        string position = ex.LineNumber is long line ? $"line {line + 1}, column {(ex.BytePositionInLine ?? 0) + 1}" : "";
        string key = ex.Path is { Length: > 1 } p ? p.TrimStart('$').TrimStart('.') : "";
        string message = ex.Message;
        int cut = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (cut < 0)
        {
            cut = message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
        }
        if (cut >= 0)
        {
            message = message[..cut];
        }
        if (System.Text.RegularExpressions.Regex.Match(message, "^Duplicate property '([^']*)'") is { Success: true } duplicate)
        {
            string name = (text is not null ? DuplicateKey(text) : null) ?? duplicate.Groups[1].Value;
            message = $"the key \"{name}\" appears twice; expected each key once";
            key = "";
        }
        else if (message.Contains("could not be converted to", StringComparison.Ordinal) || message.Contains("System.", StringComparison.Ordinal)
            || message.Contains("MimoSharp.", StringComparison.Ordinal))
        {
            string expected = expectedByPath?.Invoke(key) ?? "a value of another type";
            message = $"expected {expected}";
        }
        message = message.TrimEnd('.');
        string at = position.Length > 0 ? $" at {position}" : "";
        return key.Length > 0 ? $"\"{key}\"{at}: {message}" : at.Length > 0 ? $"{at.TrimStart()}: {message}" : message;
    }

    /// <summary>The path ("a.b") of the first key an object of <paramref name="text"/> holds twice, or null.</summary>
    public static string? DuplicateKey(string text)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            return DuplicateKey(document.RootElement, "");
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? DuplicateKey(JsonElement element, string path)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in element.EnumerateObject())
            {
                string here = path.Length == 0 ? property.Name : $"{path}.{property.Name}";
                if (!names.Add(property.Name))
                {
                    return here;
                }
                if (DuplicateKey(property.Value, here) is string inner)
                {
                    return inner;
                }
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (JsonElement item in element.EnumerateArray())
            {
                if (DuplicateKey(item, $"{path}[{i++}]") is string inner)
                {
                    return inner;
                }
            }
        }
        return null;
    }

    /// <summary>An I/O error's reason without the runtime's phrasing of the path.</summary>
    public static string Describe(Exception ex) => ex switch
    {
        UnauthorizedAccessException => "permission denied",
        DirectoryNotFoundException => "its directory does not exist",
        FileNotFoundException => "not found",
        PathTooLongException => "the path is too long",
        IOException io when io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase) => "no space left on the device",
        IOException io when io.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase) => "the file system is read-only",
        _ => "an I/O error",
    };
}
