using System.Buffers.Binary;

namespace MimoSharp.Data.Tests;

public sealed class PartsTests
{
    [Fact]
    public void TroffBecomesTextWithTheNameLine()
    {
        string page = ".\\\" a comment\n.TH LS 1\n.SH NAME\nls \\- list directory contents\n.SH DESCRIPTION\n.PP\nSort \\fBentries\\fR alphabetically \\(em by default.\n.TP\n\\fB\\-a\\fR, \\fB\\-\\-all\\fR\ndo not ignore entries starting with .\n.de XX\n.ft B\n..\n.BR ls (1)\n";
        string text = Troff.ToText(page);
        Assert.Equal("NAME\nls - list directory contents\n\nDESCRIPTION\n\nSort entries alphabetically — by default.\n\n-a, --all\ndo not ignore entries starting with .\nls(1)\n", text);
        Assert.Equal("ls - list directory contents", Troff.NameLine(text));
        Assert.Equal("", Troff.ToText(".so man1/other.1\n"));
        Assert.Equal("cat - concatenate files", Troff.NameLine(Troff.ToText(".Sh NAME\n.Nm cat\n.Nd concatenate files\n")));
    }

    [Fact]
    public void BrownTagsAreRemovedAndPunctuationAttached()
    {
        string text = BrownSource.Detag("\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, it/pps isn't/bez* (/( really/rb )/) ./.\n\n\tNext/ap ./.");
        Assert.Equal("The jury said \"no evidence\", it isn't (really).\nNext.\n", text);
    }

    [Fact]
    public void TokenFilesRoundTripAndBadOnesAreNamed()
    {
        string path = Path.Combine(Path.GetTempPath(), $"mimosharp-bin-{Environment.ProcessId}.bin");
        int[] ids = [0, 1, 65535, 300, 7];
        TokenBinFile.Write(path, ids);
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal(1024 + 2 * ids.Length, bytes.Length);
        Assert.Equal(20240520, BinaryPrimitives.ReadInt32LittleEndian(bytes));
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4)));
        Assert.Equal(ids.Length, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)));
        Assert.Equal(ids.Select(i => (ushort)i), TokenBinFile.Read(path));

        File.WriteAllBytes(path, bytes[..^2]);
        Assert.Contains("header says 5 tokens", Assert.Throws<InvalidDataException>(() => TokenBinFile.Read(path)).Message);
        bytes[0] ^= 1;
        File.WriteAllBytes(path, bytes);
        Assert.Contains("magic", Assert.Throws<InvalidDataException>(() => TokenBinFile.Read(path)).Message);
        File.WriteAllBytes(path, bytes[..100]);
        Assert.Contains("shorter than the 1024-byte llm.c header", Assert.Throws<InvalidDataException>(() => TokenBinFile.Read(path)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenBinFile.Write(path, [70000]));
    }

    [Theory]
    [InlineData(new long[] { 10, 100, 100 }, 90, new long[] { 10, 40, 40 })]
    [InlineData(new long[] { 50, 50 }, 200, new long[] { 50, 50 })]
    [InlineData(new long[] { 5, 30, 100 }, 60, new long[] { 5, 27, 28 })]
    public void SmallSourcesLeaveTheirShareToTheOthers(long[] available, long budget, long[] expected)
    {
        List<long> shares = DataBuilder.Shares(available, budget);
        Assert.True(shares.Sum() <= budget);
        Assert.Equal(expected.Sum(), shares.Sum(), 1.0);
        for (int i = 0; i < available.Length; i++)
        {
            Assert.InRange(shares[i], 0, available[i]);
        }
        Assert.Equal(expected[0], shares[0]);
    }

    [Fact]
    public void ThinkTracesAddUp()
    {
        Assert.Equal("Split 258 by place value: 258 = 200 + 50 + 8.\n347 * 258 = 347 * 200 + 347 * 50 + 347 * 8.\n347 * 200 = 69400.\n347 * 50 = 17350.\n347 * 8 = 2776.\n69400 + 17350 = 86750.\n86750 + 2776 = 89526.\nSo 347 * 258 = 89526.",
            ChatDataset.Trace(347, '*', 258));
        Assert.Equal("Split 58 by place value: 58 = 50 + 8.\n347 - 50 = 297.\n297 - 8 = 289.\nSo 347 - 58 = 289.", ChatDataset.Trace(347, '-', 58));
    }

    [Fact]
    public void NormalisesLineEndsControlsAndComposition()
    {
        Assert.Equal("a\nb\nc\u00e9\n", DataBuilder.Normalize("a\r\nb\rc\u0065\u0301\u0007  \n\n"));
        Assert.Equal("", DataBuilder.Normalize(" \n\t"));
    }
}
