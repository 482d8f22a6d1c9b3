using System.Text;

namespace MimoSharp.Tokenization.Templates;

/// <summary>Variables in scope: a chain of frames (for-loop bodies and macros push one).</summary>
internal sealed class JinjaContext
{
    private readonly List<Dictionary<string, object?>> _frames = [];

    public JinjaContext(Dictionary<string, object?> globals) => _frames.Add(globals);

    public object? Get(string name)
    {
        for (int i = _frames.Count - 1; i >= 0; i--)
        {
            if (_frames[i].TryGetValue(name, out object? value))
            {
                return value;
            }
        }
        return Undefined.Instance;
    }

    public void Set(string name, object? value) => _frames[^1][name] = value;

    public void Push() => _frames.Add(new Dictionary<string, object?>(StringComparer.Ordinal));

    public void Pop() => _frames.RemoveAt(_frames.Count - 1);
}

internal sealed class BreakSignal : Exception;

internal sealed class ContinueSignal : Exception;

internal abstract class Node
{
    public abstract void Render(JinjaContext context, StringBuilder output);

    public static void RenderAll(List<Node> nodes, JinjaContext context, StringBuilder output)
    {
        foreach (Node node in nodes)
        {
            node.Render(context, output);
        }
    }
}

internal sealed class TextNode(string text) : Node
{
    public override void Render(JinjaContext context, StringBuilder output) => output.Append(text);
}

internal sealed class OutputNode(Expr expression) : Node
{
    public override void Render(JinjaContext context, StringBuilder output) => output.Append(JinjaValues.Str(expression.Eval(context)));
}

internal sealed class IfNode(List<(Expr Condition, List<Node> Body)> branches, List<Node>? otherwise) : Node
{
    public override void Render(JinjaContext context, StringBuilder output)
    {
        foreach ((Expr condition, List<Node> body) in branches)
        {
            if (JinjaValues.Truthy(condition.Eval(context)))
            {
                RenderAll(body, context, output);
                return;
            }
        }
        if (otherwise is not null)
        {
            RenderAll(otherwise, context, output);
        }
    }
}

internal sealed class ForNode(List<string> targets, Expr iterable, Expr? filter, List<Node> body, List<Node>? otherwise, int line) : Node
{
    public override void Render(JinjaContext context, StringBuilder output)
    {
        object? source = iterable.Eval(context);
        List<object?> items = source switch
        {
            List<object?> list => list,
            Dictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
            string s => s.Select(c => (object?)c.ToString()).ToList(),
            null or Undefined => [],
            _ => throw new TemplateException($"line {line}: cannot loop over a {JinjaValues.TypeName(source)}"),
        };
        if (filter is not null)
        {
            var kept = new List<object?>();
            foreach (object? item in items)
            {
                context.Push();
                Bind(context, item);
                if (JinjaValues.Truthy(filter.Eval(context)))
                {
                    kept.Add(item);
                }
                context.Pop();
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            if (otherwise is not null)
            {
                RenderAll(otherwise, context, output);
            }
            return;
        }
        context.Push();
        try
        {
            for (int i = 0; i < items.Count; i++)
            {
                Bind(context, items[i]);
                context.Set("loop", new Dictionary<string, object?>
                {
                    ["index"] = (long)(i + 1),
                    ["index0"] = (long)i,
                    ["revindex"] = (long)(items.Count - i),
                    ["revindex0"] = (long)(items.Count - i - 1),
                    ["first"] = i == 0,
                    ["last"] = i == items.Count - 1,
                    ["length"] = (long)items.Count,
                    ["previtem"] = i > 0 ? items[i - 1] : Undefined.Instance,
                    ["nextitem"] = i + 1 < items.Count ? items[i + 1] : Undefined.Instance,
                });
                try
                {
                    RenderAll(body, context, output);
                }
                catch (ContinueSignal)
                {
                }
                catch (BreakSignal)
                {
                    break;
                }
            }
        }
        finally
        {
            context.Pop();
        }
    }

    private void Bind(JinjaContext context, object? item)
    {
        if (targets.Count == 1)
        {
            context.Set(targets[0], item);
            return;
        }
        if (item is not List<object?> tuple || tuple.Count != targets.Count)
        {
            throw new TemplateException($"line {line}: cannot unpack {JinjaValues.TypeName(item)} into {targets.Count} names");
        }
        for (int k = 0; k < targets.Count; k++)
        {
            context.Set(targets[k], tuple[k]);
        }
    }
}

internal sealed class SetNode(string name, string? attribute, Expr? value, List<Node>? block, int line) : Node
{
    public override void Render(JinjaContext context, StringBuilder output)
    {
        object? result;
        if (block is not null)
        {
            var captured = new StringBuilder();
            RenderAll(block, context, captured);
            result = captured.ToString();
        }
        else
        {
            result = value!.Eval(context);
        }
        if (attribute is null)
        {
            context.Set(name, result);
            return;
        }
        if (context.Get(name) is not Namespace ns)
        {
            throw new TemplateException($"line {line}: \"set {name}.{attribute}\" needs {name} to be a namespace()");
        }
        ns.Values[attribute] = result;
    }
}

internal sealed class ControlNode(bool isBreak) : Node
{
    public override void Render(JinjaContext context, StringBuilder output) => throw (isBreak ? new BreakSignal() : new ContinueSignal());
}

internal sealed class BlockNode(List<Node> body) : Node
{
    public override void Render(JinjaContext context, StringBuilder output) => RenderAll(body, context, output);
}

internal sealed class MacroNode(string name, List<(string Name, Expr? Default)> parameters, List<Node> body) : Node
{
    public override void Render(JinjaContext context, StringBuilder output)
    {
        JinjaCallable macro = (args, kwargs) =>
        {
            context.Push();
            try
            {
                for (int i = 0; i < parameters.Count; i++)
                {
                    (string p, Expr? d) = parameters[i];
                    object? value = i < args.Count ? args[i] : kwargs.TryGetValue(p, out object? k) ? k : d is not null ? d.Eval(context) : Undefined.Instance;
                    context.Set(p, value);
                }
                var text = new StringBuilder();
                RenderAll(body, context, text);
                return text.ToString();
            }
            finally
            {
                context.Pop();
            }
        };
        context.Set(name, macro);
    }
}
