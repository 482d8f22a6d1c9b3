using System.Globalization;

namespace MimoSharp.Tokenization.Templates;

/// <summary>Recursive-descent parser for the Jinja subset chat templates use; unsupported syntax names the construct and line.</summary>
internal sealed class JinjaParser(List<JinjaToken> tokens)
{
    private int _position;

    private JinjaToken Peek => tokens[_position];

    private JinjaToken Next() => tokens[_position++];

    private TemplateException Error(string message) => new($"line {Peek.Line}: {message}");

    public List<Node> ParseTemplate()
    {
        List<Node> body = ParseBody(out string? end);
        if (end is not null)
        {
            throw Error($"\"{{% {end} %}}\" without a matching opening tag");
        }
        return body;
    }

    /// <summary>Nodes up to a closing statement (endif, else, ...) whose keyword is returned, or the end of the template.</summary>
    private List<Node> ParseBody(out string? terminator, params string[] terminators)
    {
        var nodes = new List<Node>();
        while (true)
        {
            JinjaToken token = Peek;
            switch (token.Kind)
            {
                case JinjaTokenKind.End:
                    terminator = null;
                    return nodes;
                case JinjaTokenKind.Text:
                    Next();
                    nodes.Add(new TextNode(token.Value));
                    break;
                case JinjaTokenKind.ExpressionStart:
                    Next();
                    nodes.Add(new OutputNode(ParseExpression()));
                    Expect(JinjaTokenKind.ExpressionEnd, "}}");
                    break;
                case JinjaTokenKind.StatementStart:
                    Next();
                    JinjaToken keyword = Next();
                    if (keyword.Kind != JinjaTokenKind.Name)
                    {
                        throw new TemplateException($"line {keyword.Line}: expected a statement keyword after \"{{%\"");
                    }
                    if (terminators.Contains(keyword.Value) || keyword.Value.StartsWith("end", StringComparison.Ordinal) || keyword.Value is "else" or "elif")
                    {
                        if (!terminators.Contains(keyword.Value))
                        {
                            throw new TemplateException($"line {keyword.Line}: unexpected \"{{% {keyword.Value} %}}\"");
                        }
                        terminator = keyword.Value;
                        if (terminator.StartsWith("end", StringComparison.Ordinal))
                        {
                            Expect(JinjaTokenKind.StatementEnd, "%}");
                        }
                        return nodes;
                    }
                    nodes.Add(ParseStatement(keyword));
                    break;
                default:
                    throw Error($"unexpected {token.Kind}");
            }
        }
    }

    private Node ParseStatement(JinjaToken keyword)
    {
        int line = keyword.Line;
        switch (keyword.Value)
        {
            case "if":
                {
                    var branches = new List<(Expr, List<Node>)>();
                    Expr condition = ParseExpression();
                    Expect(JinjaTokenKind.StatementEnd, "%}");
                    while (true)
                    {
                        List<Node> body = ParseBody(out string? end, "elif", "else", "endif");
                        branches.Add((condition, body));
                        if (end == "elif")
                        {
                            condition = ParseExpression();
                            Expect(JinjaTokenKind.StatementEnd, "%}");
                            continue;
                        }
                        List<Node>? otherwise = null;
                        if (end == "else")
                        {
                            Expect(JinjaTokenKind.StatementEnd, "%}");
                            otherwise = ParseBody(out end, "endif");
                        }
                        RequireEnd(end, "endif", "if", line);
                        return new IfNode(branches, otherwise);
                    }
                }
            case "for":
                {
                    var targets = new List<string> { ExpectName() };
                    while (IsOperator(","))
                    {
                        Next();
                        targets.Add(ExpectName());
                    }
                    if (Next() is not { Kind: JinjaTokenKind.Name, Value: "in" })
                    {
                        throw new TemplateException($"line {line}: expected \"in\" in the for statement");
                    }
                    Expr iterable = ParseOr();
                    Expr? filter = null;
                    if (Peek is { Kind: JinjaTokenKind.Name, Value: "if" })
                    {
                        Next();
                        filter = ParseOr();
                    }
                    if (Peek is { Kind: JinjaTokenKind.Name, Value: "recursive" })
                    {
                        throw Error("recursive for loops are not supported");
                    }
                    Expect(JinjaTokenKind.StatementEnd, "%}");
                    List<Node> body = ParseBody(out string? end, "else", "endfor");
                    List<Node>? otherwise = null;
                    if (end == "else")
                    {
                        Expect(JinjaTokenKind.StatementEnd, "%}");
                        otherwise = ParseBody(out end, "endfor");
                    }
                    RequireEnd(end, "endfor", "for", line);
                    return new ForNode(targets, iterable, filter, body, otherwise, line);
                }
            case "set":
                {
                    string name = ExpectName();
                    string? attribute = null;
                    if (IsOperator("."))
                    {
                        Next();
                        attribute = ExpectName();
                    }
                    if (IsOperator("="))
                    {
                        Next();
                        Expr value = ParseExpression();
                        Expect(JinjaTokenKind.StatementEnd, "%}");
                        return new SetNode(name, attribute, value, null, line);
                    }
                    Expect(JinjaTokenKind.StatementEnd, "%}");
                    List<Node> block = ParseBody(out string? end, "endset");
                    RequireEnd(end, "endset", "set", line);
                    return new SetNode(name, attribute, null, block, line);
                }
            case "macro":
                {
                    string name = ExpectName();
                    Expect(JinjaTokenKind.Operator, "(");
                    var parameters = new List<(string, Expr?)>();
                    while (!IsOperator(")"))
                    {
                        string p = ExpectName();
                        Expr? d = null;
                        if (IsOperator("="))
                        {
                            Next();
                            d = ParseExpression();
                        }
                        parameters.Add((p, d));
                        if (IsOperator(","))
                        {
                            Next();
                        }
                    }
                    Next();
                    Expect(JinjaTokenKind.StatementEnd, "%}");
                    List<Node> body = ParseBody(out string? end, "endmacro");
                    RequireEnd(end, "endmacro", "macro", line);
                    return new MacroNode(name, parameters, body);
                }
            case "break" or "continue":
                Expect(JinjaTokenKind.StatementEnd, "%}");
                return new ControlNode(keyword.Value == "break");
            case "generation":
                {
                    // Hugging Face marks assistant text for training masks; it renders its body unchanged.
                    Expect(JinjaTokenKind.StatementEnd, "%}");
                    List<Node> body = ParseBody(out string? end, "endgeneration");
                    RequireEnd(end, "endgeneration", "generation", line);
                    return new BlockNode(body);
                }
            default:
                throw new TemplateException($"line {line}: the \"{{% {keyword.Value} %}}\" statement is not supported");
        }
    }

    private static void RequireEnd(string? end, string expected, string opened, int line)
    {
        if (end != expected)
        {
            throw new TemplateException($"line {line}: \"{{% {opened} %}}\" is never closed with \"{{% {expected} %}}\"");
        }
    }

    private void Expect(JinjaTokenKind kind, string what)
    {
        JinjaToken token = Next();
        if (token.Kind != kind || (kind == JinjaTokenKind.Operator && token.Value != what))
        {
            throw new TemplateException($"line {token.Line}: expected \"{what}\" but found \"{(token.Value.Length > 0 ? token.Value : token.Kind.ToString())}\"");
        }
    }

    private string ExpectName()
    {
        JinjaToken token = Next();
        return token.Kind == JinjaTokenKind.Name ? token.Value : throw new TemplateException($"line {token.Line}: expected a name but found \"{token.Value}\"");
    }

    private bool IsOperator(string op) => Peek.Kind == JinjaTokenKind.Operator && Peek.Value == op;

    private bool IsName(string name) => Peek.Kind == JinjaTokenKind.Name && Peek.Value == name;

    private Expr ParseExpression()
    {
        Expr value = ParseOr();
        if (IsName("if"))
        {
            int line = Next().Line;
            Expr condition = ParseOr();
            Expr? otherwise = null;
            if (IsName("else"))
            {
                Next();
                otherwise = ParseExpression();
            }
            return new ConditionalExpr(condition, value, otherwise) { Line = line };
        }
        return value;
    }

    private Expr ParseOr()
    {
        Expr left = ParseAnd();
        while (IsName("or"))
        {
            int line = Next().Line;
            left = new BinaryExpr("or", left, ParseAnd()) { Line = line };
        }
        return left;
    }

    private Expr ParseAnd()
    {
        Expr left = ParseNot();
        while (IsName("and"))
        {
            int line = Next().Line;
            left = new BinaryExpr("and", left, ParseNot()) { Line = line };
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (IsName("not"))
        {
            int line = Next().Line;
            return new UnaryExpr("not", ParseNot()) { Line = line };
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        Expr left = ParseConcat();
        while (true)
        {
            int line = Peek.Line;
            if (Peek.Kind == JinjaTokenKind.Operator && Peek.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                string op = Next().Value;
                left = new BinaryExpr(op, left, ParseConcat()) { Line = line };
            }
            else if (IsName("in"))
            {
                Next();
                left = new BinaryExpr("in", left, ParseConcat()) { Line = line };
            }
            else if (IsName("not") && tokens[_position + 1] is { Kind: JinjaTokenKind.Name, Value: "in" })
            {
                Next();
                Next();
                left = new BinaryExpr("not in", left, ParseConcat()) { Line = line };
            }
            else if (IsName("is"))
            {
                Next();
                bool negated = false;
                if (IsName("not"))
                {
                    Next();
                    negated = true;
                }
                JinjaToken test = Next();
                string name = test.Kind is JinjaTokenKind.Name or JinjaTokenKind.Operator ? test.Value : throw new TemplateException($"line {test.Line}: expected a test name after \"is\"");
                var args = new List<Expr>();
                if (IsOperator("("))
                {
                    args = ParseArguments(out _);
                }
                else if (Peek.Kind is JinjaTokenKind.String or JinjaTokenKind.Integer or JinjaTokenKind.Float || (Peek.Kind == JinjaTokenKind.Name && Peek.Value is not ("and" or "or" or "if" or "else")))
                {
                    args.Add(ParsePrimary());
                }
                left = new TestExpr(left, name, args, negated) { Line = line };
            }
            else
            {
                return left;
            }
        }
    }

    private Expr ParseConcat()
    {
        Expr left = ParseAdditive();
        while (IsOperator("~"))
        {
            int line = Next().Line;
            left = new BinaryExpr("~", left, ParseAdditive()) { Line = line };
        }
        return left;
    }

    private Expr ParseAdditive()
    {
        Expr left = ParseMultiplicative();
        while (Peek.Kind == JinjaTokenKind.Operator && Peek.Value is "+" or "-")
        {
            JinjaToken op = Next();
            left = new BinaryExpr(op.Value, left, ParseMultiplicative()) { Line = op.Line };
        }
        return left;
    }

    private Expr ParseMultiplicative()
    {
        Expr left = ParseUnary();
        while (Peek.Kind == JinjaTokenKind.Operator && Peek.Value is "*" or "/" or "//" or "%")
        {
            JinjaToken op = Next();
            left = new BinaryExpr(op.Value, left, ParseUnary()) { Line = op.Line };
        }
        return left;
    }

    private Expr ParseUnary()
    {
        if (Peek.Kind == JinjaTokenKind.Operator && Peek.Value is "-" or "+")
        {
            JinjaToken op = Next();
            return new UnaryExpr(op.Value, ParseUnary()) { Line = op.Line };
        }
        Expr value = ParseFiltered();
        if (IsOperator("**"))
        {
            int line = Next().Line;
            return new BinaryExpr("**", value, ParseUnary()) { Line = line };
        }
        return value;
    }

    private Expr ParseFiltered()
    {
        Expr value = ParsePostfix(ParsePrimary());
        while (IsOperator("|"))
        {
            int line = Next().Line;
            string name = ExpectName();
            var args = new List<Expr>();
            var kwargs = new List<(string, Expr)>();
            if (IsOperator("("))
            {
                args = ParseArguments(out kwargs);
            }
            value = ParsePostfix(new FilterExpr(value, name, args, kwargs) { Line = line });
        }
        return value;
    }

    private Expr ParsePostfix(Expr value)
    {
        while (true)
        {
            int line = Peek.Line;
            if (IsOperator("."))
            {
                Next();
                JinjaToken member = Next();
                value = member.Kind == JinjaTokenKind.Integer
                    ? new IndexExpr(value, new LiteralExpr(long.Parse(member.Value, CultureInfo.InvariantCulture))) { Line = line }
                    : new AttributeExpr(value, member.Kind == JinjaTokenKind.Name ? member.Value : throw new TemplateException($"line {member.Line}: expected an attribute name after \".\"")) { Line = line };
            }
            else if (IsOperator("["))
            {
                Next();
                Expr? start = IsOperator(":") ? null : ParseExpression();
                if (IsOperator(":"))
                {
                    Next();
                    Expr? stop = IsOperator(":") || IsOperator("]") ? null : ParseExpression();
                    Expr? step = null;
                    if (IsOperator(":"))
                    {
                        Next();
                        step = IsOperator("]") ? null : ParseExpression();
                    }
                    Expect(JinjaTokenKind.Operator, "]");
                    value = new SliceExpr(value, start, stop, step) { Line = line };
                }
                else
                {
                    Expect(JinjaTokenKind.Operator, "]");
                    value = new IndexExpr(value, start!) { Line = line };
                }
            }
            else if (IsOperator("("))
            {
                List<Expr> args = ParseArguments(out List<(string, Expr)> kwargs);
                value = new CallExpr(value, args, kwargs) { Line = line };
            }
            else
            {
                return value;
            }
        }
    }

    private List<Expr> ParseArguments(out List<(string, Expr)> kwargs)
    {
        Expect(JinjaTokenKind.Operator, "(");
        var args = new List<Expr>();
        kwargs = [];
        while (!IsOperator(")"))
        {
            if (Peek.Kind == JinjaTokenKind.Name && tokens[_position + 1] is { Kind: JinjaTokenKind.Operator, Value: "=" })
            {
                string name = Next().Value;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                args.Add(ParseExpression());
            }
            if (IsOperator(","))
            {
                Next();
            }
            else if (!IsOperator(")"))
            {
                throw Error($"expected \",\" or \")\" in an argument list, found \"{Peek.Value}\"");
            }
        }
        Next();
        return args;
    }

    private Expr ParsePrimary()
    {
        JinjaToken token = Next();
        int line = token.Line;
        switch (token.Kind)
        {
            case JinjaTokenKind.String:
                {
                    string value = token.Value;
                    while (Peek.Kind == JinjaTokenKind.String)
                    {
                        value += Next().Value; // adjacent literals concatenate
                    }
                    return new LiteralExpr(value) { Line = line };
                }
            case JinjaTokenKind.Integer:
                return new LiteralExpr(long.Parse(token.Value, CultureInfo.InvariantCulture)) { Line = line };
            case JinjaTokenKind.Float:
                return new LiteralExpr(double.Parse(token.Value, CultureInfo.InvariantCulture)) { Line = line };
            case JinjaTokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(true) { Line = line },
                    "false" or "False" => new LiteralExpr(false) { Line = line },
                    "none" or "None" => new LiteralExpr(null) { Line = line },
                    _ => new NameExpr(token.Value) { Line = line },
                };
            case JinjaTokenKind.Operator when token.Value == "(":
                {
                    if (IsOperator(")"))
                    {
                        Next();
                        return new ListExpr([]) { Line = line };
                    }
                    Expr first = ParseExpression();
                    if (IsOperator(","))
                    {
                        var items = new List<Expr> { first };
                        while (IsOperator(","))
                        {
                            Next();
                            if (IsOperator(")"))
                            {
                                break;
                            }
                            items.Add(ParseExpression());
                        }
                        Expect(JinjaTokenKind.Operator, ")");
                        return new ListExpr(items) { Line = line };
                    }
                    Expect(JinjaTokenKind.Operator, ")");
                    return first;
                }
            case JinjaTokenKind.Operator when token.Value == "[":
                {
                    var items = new List<Expr>();
                    while (!IsOperator("]"))
                    {
                        items.Add(ParseExpression());
                        if (IsOperator(","))
                        {
                            Next();
                        }
                    }
                    Next();
                    return new ListExpr(items) { Line = line };
                }
            case JinjaTokenKind.Operator when token.Value == "{":
                {
                    var entries = new List<(Expr, Expr)>();
                    while (!IsOperator("}"))
                    {
                        Expr key = ParseExpression();
                        Expect(JinjaTokenKind.Operator, ":");
                        entries.Add((key, ParseExpression()));
                        if (IsOperator(","))
                        {
                            Next();
                        }
                    }
                    Next();
                    return new DictExpr(entries) { Line = line };
                }
            default:
                throw new TemplateException($"line {line}: unexpected \"{(token.Value.Length > 0 ? token.Value : token.Kind.ToString())}\" in an expression");
        }
    }
}
