using System.Text;
using System.Text.RegularExpressions;

namespace MimoSharp.Data;

/// <summary>
/// Manual pages (man and mdoc troff) to plain text, enough for a corpus: section headings on their own
/// lines, paragraphs, the text of font and mdoc macros, common escapes resolved, the rest of the
/// formatting dropped. Not a formatter: no filling, tables come out as their cell text.
/// </summary>
public static partial class Troff
{
    private static readonly HashSet<string> s_dropped =
    [
        "TH", "Dd", "Dt", "Os", "ds", "de", "nr", "if", "ie", "el", "ta", "in", "ft", "sp", "br", "ne", "na", "nh", "hy", "ad", "fi", "nf",
        "ll", "tr", "cc", "rm", "am", "als", "ig", "so", "mso", "EX", "EE", "RS", "RE", "UC", "PD", "ti", "ps", "vs", "fam", "lf", "ev",
        "TS", "TE", "T&", "Bl", "El", "Bd", "Ed", "Pp", "PP", "LP", "P", "HP", "Sm", "ns", "rs", "pc", "ce", "bp", "cu", "ul", "tm", "ab",
        "Ns", "Ek", "Bk", "Lp", "YS", "SY", "OP", "ME", "UE", "MT", "UR", "hw", "nop", "Ft", "Fo", "Fc",
    ];

    [GeneratedRegex(@"\\f(\[[^\]]*\]|\(..|.)|\\s[+-]?\d+|\\s\[[^\]]*\]|\\[*n](\[[^\]]*\]|\(..|.)|\\[hvwkloLDNXZx]'[^']*'|\\[&|^c%:,/)]|\\[ \~0]")]
    private static partial Regex Formatting();

    [GeneratedRegex(@"\\\((..)|\\\[([^\]\s]+)\]")]
    private static partial Regex Glyph();

    [GeneratedRegex(@"""([^""]*)""|(\S+)")]
    private static partial Regex Argument();

    private static readonly Dictionary<string, string> s_glyphs = new(StringComparer.Ordinal)
    {
        ["em"] = "—", ["en"] = "–", ["hy"] = "-", ["aq"] = "'", ["dq"] = "\"", ["lq"] = "“", ["rq"] = "”", ["oq"] = "‘", ["cq"] = "’",
        ["bu"] = "•", ["co"] = "©", ["rg"] = "®", ["tm"] = "™", ["de"] = "°", ["mu"] = "×", ["di"] = "÷", ["+-"] = "±", ["<="] = "≤",
        [">="] = "≥", ["!="] = "≠", ["->"] = "→", ["<-"] = "←", ["ga"] = "`", ["ha"] = "^", ["ti"] = "~", ["rs"] = "\\", ["sl"] = "/",
        ["ba"] = "|", ["br"] = "|", ["lh"] = "☜", ["rh"] = "☞", ["ua"] = "↑", ["da"] = "↓", ["ul"] = "_", ["sq"] = "□", ["at"] = "@", ["sh"] = "#",
    };

    /// <summary>The page as text, or "" when it is only a redirect (".so man1/other.1").</summary>
    public static string ToText(string source)
    {
        var text = new StringBuilder();
        bool inDefinition = false;
        foreach (string raw in source.Replace("\r\n", "\n").Split('\n'))
        {
            string line = raw;
            if (inDefinition)
            {
                inDefinition = line.TrimEnd() != "..";
                continue;
            }
            if (line.StartsWith(".\\\"", StringComparison.Ordinal) || line.StartsWith("'\\\"", StringComparison.Ordinal) || line.StartsWith("\\\"", StringComparison.Ordinal) || line == ".")
            {
                continue;
            }
            if (line.Length > 0 && (line[0] == '.' || line[0] == '\''))
            {
                string body = line[1..].TrimStart();
                int space = body.IndexOfAny([' ', '\t']);
                string macro = space < 0 ? body : body[..space];
                string rest = space < 0 ? "" : body[(space + 1)..];
                if (macro == "so" && text.Length == 0)
                {
                    return "";
                }
                if (macro is "de" or "de1" or "am" or "ig")
                {
                    inDefinition = true;
                    continue;
                }
                switch (macro)
                {
                    case "SH" or "SS" or "Sh" or "Ss":
                        text.Append('\n').Append(Unescape(string.Join(' ', Arguments(rest)))).Append('\n');
                        break;
                    case "PP" or "LP" or "P" or "Pp" or "Lp" or "sp" or "HP":
                        AppendParagraphBreak(text);
                        break;
                    case "TP" or "IP" or "It":
                        AppendParagraphBreak(text);
                        if (Arguments(rest).FirstOrDefault() is string tag && macro != "TP")
                        {
                            text.Append(Unescape(tag)).Append(' ');
                        }
                        break;
                    case "B" or "I" or "SM" or "SB" or "Nm" or "Nd" or "Ar" or "Fl" or "Cm" or "Pa" or "Va" or "Fn" or "Fa" or "Xr" or "Em" or "Sy" or "Li" or "Dq" or "Qq" or "Sq" or "Ql" or "Op" or "Ev" or "Er" or "Dv" or "Ic" or "Ad" or "Ta":
                        string prefix = macro switch { "Fl" => "-", "Nd" => "- ", _ => "" };
                        text.Append(prefix).Append(Unescape(string.Join(' ', Arguments(rest)))).Append('\n');
                        break;
                    case "BR" or "RB" or "BI" or "IB" or "IR" or "RI":
                        text.Append(Unescape(string.Concat(Arguments(rest)))).Append('\n');
                        break;
                    default:
                        if (!s_dropped.Contains(macro) && rest.Length > 0 && macro.Length <= 3 && char.IsUpper(macro[0]))
                        {
                            text.Append(Unescape(string.Join(' ', Arguments(rest)))).Append('\n');
                        }
                        break;
                }
                continue;
            }
            text.Append(Unescape(line)).Append('\n');
        }
        return Regex.Replace(text.ToString(), @"\n{3,}", "\n\n").Trim() is { Length: > 0 } result ? result + "\n" : "";
    }

    /// <summary>The NAME section's first line, e.g. "ls - list directory contents".</summary>
    public static string? NameLine(string text)
    {
        int start = text.IndexOf("NAME\n", StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }
        string rest = text[(start + 5)..].TrimStart('\n');
        int end = rest.IndexOf("\n\n", StringComparison.Ordinal);
        string name = (end < 0 ? rest : rest[..end]).Replace('\n', ' ').Trim();
        return name.Length > 0 ? Regex.Replace(name, @"\s+", " ") : null;
    }

    private static void AppendParagraphBreak(StringBuilder text)
    {
        if (text.Length > 0 && !(text.Length >= 2 && text[^1] == '\n' && text[^2] == '\n'))
        {
            text.Append(text[^1] == '\n' ? "\n" : "\n\n");
        }
    }

    private static IEnumerable<string> Arguments(string rest) =>
        Argument().Matches(rest).Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value);

    internal static string Unescape(string line)
    {
        if (!line.Contains('\\'))
        {
            return line;
        }
        line = Glyph().Replace(line, m => s_glyphs.GetValueOrDefault(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value, ""));
        line = line.Replace("\\-", "-").Replace("\\e", "\\\\");
        line = Formatting().Replace(line, m => m.Value is "\\ " or "\\~" or "\\0" ? " " : "");
        // Whatever escape is left: drop the backslash, keep the character ("\\" stays one backslash).
        var result = new StringBuilder(line.Length);
        for (int i = 0; i < line.Length; i++)
        {
            if (line[i] == '\\' && i + 1 < line.Length)
            {
                result.Append(line[++i]);
            }
            else if (line[i] != '\\')
            {
                result.Append(line[i]);
            }
        }
        return result.ToString();
    }
}
