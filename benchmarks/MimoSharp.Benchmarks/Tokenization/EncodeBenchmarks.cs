using System.IO.Compression;
using System.Text;
using BenchmarkDotNet.Attributes;
using MimoSharp.Tokenization;

namespace MimoSharp.Benchmarks.Tokenization;

/// <summary>
/// Encoding speed of the real Qwen3 tokenizer on one core over ~1 MB of random words, prose, code and CJK
/// (tokens per second = the reported token count / mean time). Target: at least 1M tokens/s.
/// </summary>
[MemoryDiagnoser]
public class EncodeBenchmarks
{
    private MimoTokenizer _tokenizer = null!;
    private string _text = null!;

    public int Tokens { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "MimoSharp.slnx")))
        {
            root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("run from inside the repository");
        }
        string source = Path.Combine(root, "testdata", "tokenizer", "qwen3");
        string dir = Path.Combine(Path.GetTempPath(), "mimosharp-bench-qwen3");
        Directory.CreateDirectory(dir);
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(source, "tokenizer.json.gz")), CompressionMode.Decompress))
        using (var target = File.Create(Path.Combine(dir, "tokenizer.json")))
        {
            gz.CopyTo(target);
        }
        File.Copy(Path.Combine(source, "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"), overwrite: true);
        _tokenizer = MimoTokenizer.Load(dir);
        // Mostly fresh words (random letters), so the tokenizer's word cache cannot hide the BPE work.
        var random = new Random(1);
        var text = new StringBuilder();
        for (int i = 0; text.Length < 1_000_000; i++)
        {
            for (int w = 0; w < 12; w++)
            {
                int length = random.Next(2, 10);
                for (int c = 0; c < length; c++)
                {
                    text.Append((char)('a' + random.Next(26)));
                }
                text.Append(' ');
            }
            text.Append($"Paragraph {i}: the quick brown fox jumps over the lazy dog, and then it writes some code.\n");
            text.Append($"def f_{i}(x):\n    return x * {i} + 1  # comment\n");
            text.Append("机器学习是人工智能的一个分支。\n");
        }
        _text = text.ToString();
        Tokens = _tokenizer.Encode(_text).Count;
        Console.WriteLine($"// {Tokens} tokens in {_text.Length} chars");
    }

    [Benchmark]
    public int Encode() => _tokenizer.Encode(_text).Count;
}
