using System.Text;

namespace MimoSharp.Tokenization.Templates;

internal enum JinjaTokenKind
{
    Text,
    Name,
    String,
    Integer,
    Float,
    Operator,
    ExpressionStart,
    ExpressionEnd,
    StatementStart,
    StatementEnd,
    End,
}

internal readonly record struct JinjaToken(JinjaTokenKind Kind, string Value, int Line);

/// <summary>
/// Splits a template into text and tag tokens, with Hugging Face's environment settings: trim_blocks
/// (the newline after a block tag goes) and lstrip_blocks (spaces before a block tag on its line go),
/// plus "-" whitespace control and {# comments #}.
/// </summary>
internal static class JinjaLexer
{
    private static readonly string[] s_operators = ["==", "!=", "<=", ">=", "//", "**", "+", "-", "*", "/", "%", "<", ">", "~", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}", "="];

    public static List<JinjaToken> Tokenize(string source)
    {
        var tokens = new List<JinjaToken>();
        int i = 0, line = 1;
        bool trimNextText = false; // "-" on the previous tag's close
        bool afterBlock = false;   // trim_blocks: drop one newline after a block tag
        while (i < source.Length)
        {
            int open = FindTagOpen(source, i);
            string text = source[i..(open < 0 ? source.Length : open)];
            if (afterBlock && text.StartsWith('\n'))
            {
                text = text[1..];
            }
            else if (afterBlock && text.StartsWith("\r\n", StringComparison.Ordinal))
            {
                text = text[2..];
            }
            if (trimNextText)
            {
                text = text.TrimStart();
            }
            if (open < 0)
            {
                Add(tokens, JinjaTokenKind.Text, text, line);
                break;
            }
            char kind = source[open + 1];
            bool trimBefore = open + 2 < source.Length && source[open + 2] == '-';
            if (trimBefore)
            {
                text = text.TrimEnd();
            }
            else if (kind is '%' or '#')
            {
                // lstrip_blocks: spaces and tabs between the line start and a block tag go.
                int k = open;
                while (k > 0 && source[k - 1] is ' ' or '\t')
                {
                    k--;
                }
                if (k == 0 || source[k - 1] == '\n')
                {
                    text = text[..Math.Max(0, text.Length - (open - k))];
                }
            }
            Add(tokens, JinjaTokenKind.Text, text, line);
            line += CountLines(source, i, open);
            int contentStart = open + 2 + (trimBefore ? 1 : 0);
            string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
            int end = FindClose(source, contentStart, close);
            if (end < 0)
            {
                throw new TemplateException($"line {line}: unclosed \"{source.Substring(open, 2)}\" tag");
            }
            bool trimAfter = source[end - 1] == '-' && end - 1 >= contentStart;
            string content = source[contentStart..(trimAfter ? end - 1 : end)];
            if (kind == '#')
            {
                afterBlock = true;
            }
            else
            {
                tokens.Add(new JinjaToken(kind == '{' ? JinjaTokenKind.ExpressionStart : JinjaTokenKind.StatementStart, "", line));
                LexExpression(content, line, tokens);
                tokens.Add(new JinjaToken(kind == '{' ? JinjaTokenKind.ExpressionEnd : JinjaTokenKind.StatementEnd, "", line));
                afterBlock = kind == '%';
            }
            line += CountLines(source, open, end + 2);
            trimNextText = trimAfter;
            i = end + 2;
        }
        tokens.Add(new JinjaToken(JinjaTokenKind.End, "", line));
        return tokens;
    }

    private static void Add(List<JinjaToken> tokens, JinjaTokenKind kind, string value, int line)
    {
        if (value.Length > 0)
        {
            tokens.Add(new JinjaToken(kind, value, line));
        }
    }

    private static int CountLines(string s, int from, int to)
    {
        int n = 0;
        for (int k = from; k < to && k < s.Length; k++)
        {
            if (s[k] == '\n')
            {
                n++;
            }
        }
        return n;
    }

    private static int FindTagOpen(string s, int from)
    {
        for (int k = from; k < s.Length - 1; k++)
        {
            if (s[k] == '{' && s[k + 1] is '{' or '%' or '#')
            {
                return k;
            }
        }
        return -1;
    }

    /// <summary>The closing delimiter, skipping string literals inside the tag.</summary>
    private static int FindClose(string s, int from, string close)
    {
        char quote = '\0';
        for (int k = from; k < s.Length - 1; k++)
        {
            char c = s[k];
            if (quote != '\0')
            {
                if (c == '\\')
                {
                    k++;
                }
                else if (c == quote)
                {
                    quote = '\0';
                }
                continue;
            }
            if (close != "#}" && c is '\'' or '"')
            {
                quote = c;
            }
            else if (c == close[0] && s[k + 1] == close[1])
            {
                return k;
            }
        }
        return -1;
    }

    private static void LexExpression(string content, int line, List<JinjaToken> tokens)
    {
        int i = 0;
        while (i < content.Length)
        {
            char c = content[i];
            if (char.IsWhiteSpace(c))
            {
                if (c == '\n')
                {
                    line++;
                }
                i++;
                continue;
            }
            if (c is '\'' or '"')
            {
                var value = new StringBuilder();
                int k = i + 1;
                for (; k < content.Length && content[k] != c; k++)
                {
                    if (content[k] == '\\' && k + 1 < content.Length)
                    {
                        k++;
                        value.Append(content[k] switch { 'n' => '\n', 't' => '\t', 'r' => '\r', '\\' => '\\', '\'' => '\'', '"' => '"', char other => other });
                    }
                    else
                    {
                        value.Append(content[k]);
                    }
                }
                if (k >= content.Length)
                {
                    throw new TemplateException($"line {line}: unterminated string literal");
                }
                tokens.Add(new JinjaToken(JinjaTokenKind.String, value.ToString(), line));
                i = k + 1;
                continue;
            }
            if (char.IsDigit(c))
            {
                int k = i;
                while (k < content.Length && char.IsDigit(content[k]))
                {
                    k++;
                }
                bool isFloat = k + 1 < content.Length && content[k] == '.' && char.IsDigit(content[k + 1]);
                if (isFloat)
                {
                    k++;
                    while (k < content.Length && char.IsDigit(content[k]))
                    {
                        k++;
                    }
                }
                tokens.Add(new JinjaToken(isFloat ? JinjaTokenKind.Float : JinjaTokenKind.Integer, content[i..k], line));
                i = k;
                continue;
            }
            if (char.IsLetter(c) || c == '_')
            {
                int k = i;
                while (k < content.Length && (char.IsLetterOrDigit(content[k]) || content[k] == '_'))
                {
                    k++;
                }
                tokens.Add(new JinjaToken(JinjaTokenKind.Name, content[i..k], line));
                i = k;
                continue;
            }
            string? op = s_operators.FirstOrDefault(o => string.CompareOrdinal(content, i, o, 0, o.Length) == 0);
            if (op is null)
            {
                throw new TemplateException($"line {line}: unexpected character '{c}' in a tag");
            }
            tokens.Add(new JinjaToken(JinjaTokenKind.Operator, op, line));
            i += op.Length;
        }
    }
}
