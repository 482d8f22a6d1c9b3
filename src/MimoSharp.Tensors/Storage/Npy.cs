using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace MimoSharp.Tensors.Storage;

/// <summary>A NumPy .npy array (format 1.0/2.0/3.0, C order, little-endian float32/float64/int32/int64).</summary>
public sealed partial record NpyArray(int[] Shape, double[] Values)
{
    public int Count => Values.Length;

    public float[] ToSingles() => Array.ConvertAll(Values, v => (float)v);

    public int[] ToInt32s() => Array.ConvertAll(Values, v => checked((int)v));
}

/// <summary>Reads and writes .npy files: the format users validating a port already hold their reference logits in.</summary>
public static partial class Npy
{
    private static readonly byte[] s_magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    [GeneratedRegex(@"'descr':\s*'([<>|=]?)([a-z])(\d+)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order':\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();

    /// <summary>Writes float32 values with the given shape.</summary>
    public static void WriteFloat32(Stream stream, ReadOnlySpan<float> values, params int[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (count != values.Length)
        {
            throw new ArgumentException($"shape ({string.Join(", ", shape)}) holds {count} values, got {values.Length}");
        }
        string shapeText = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        string header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({shapeText}), }}";
        // Magic (6) + version (2) + header length (2) + header + padding + '\n' is a multiple of 64.
        int unpadded = 10 + header.Length + 1;
        header += new string(' ', (64 - unpadded % 64) % 64) + "\n";
        stream.Write(s_magic);
        stream.Write([1, 0]);
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)header.Length);
        stream.Write(length);
        stream.Write(Encoding.ASCII.GetBytes(header));
        Span<byte> buffer = stackalloc byte[4];
        foreach (float value in values)
        {
            BinaryPrimitives.WriteSingleLittleEndian(buffer, value);
            stream.Write(buffer);
        }
    }

    public static void WriteFloat32(string path, ReadOnlySpan<float> values, params int[] shape)
    {
        using var stream = new BufferedStream(File.Create(path), 1 << 20);
        WriteFloat32(stream, values, shape);
    }

    public static NpyArray Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return Read(bytes);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{path}: {ex.Message}", ex);
        }
    }

    public static NpyArray Read(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(s_magic))
        {
            throw new InvalidDataException("not a .npy file (bad magic)");
        }
        int major = bytes[6];
        int headerLength, headerStart;
        if (major == 1)
        {
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]);
            headerStart = 10;
        }
        else
        {
            headerLength = checked((int)BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]));
            headerStart = 12;
        }
        if (headerStart + headerLength > bytes.Length)
        {
            throw new InvalidDataException("header runs past the end of the file");
        }
        string header = Encoding.Latin1.GetString(bytes.Slice(headerStart, headerLength));
        Match descr = DescrPattern().Match(header);
        Match shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !shapeMatch.Success)
        {
            throw new InvalidDataException($"cannot read descr/shape from header {header.Trim()}");
        }
        if (FortranPattern().Match(header) is { Success: true } f && f.Groups[1].Value == "True")
        {
            throw new InvalidDataException("Fortran-order arrays are not supported");
        }
        if (descr.Groups[1].Value == ">")
        {
            throw new InvalidDataException("big-endian arrays are not supported");
        }
        int[] shape = shapeMatch.Groups[1].Value
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        long count = shape.Aggregate(1L, (a, b) => a * b);
        char kind = descr.Groups[2].Value[0];
        int size = int.Parse(descr.Groups[3].Value, CultureInfo.InvariantCulture);
        ReadOnlySpan<byte> data = bytes[(headerStart + headerLength)..];
        if (data.Length < count * size)
        {
            throw new InvalidDataException($"data holds {data.Length} bytes; shape ({string.Join(", ", shape)}) of {kind}{size} needs {count * size}");
        }
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> item = data.Slice(i * size, size);
            values[i] = (kind, size) switch
            {
                ('f', 4) => BinaryPrimitives.ReadSingleLittleEndian(item),
                ('f', 8) => BinaryPrimitives.ReadDoubleLittleEndian(item),
                ('i', 4) => BinaryPrimitives.ReadInt32LittleEndian(item),
                ('i', 8) => BinaryPrimitives.ReadInt64LittleEndian(item),
                _ => throw new InvalidDataException($"dtype {kind}{size} is not supported; expected f4, f8, i4 or i8"),
            };
        }
        return new NpyArray(shape, values);
    }
}
