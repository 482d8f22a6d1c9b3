using System.Text.Json.Nodes;
using MimoSharp.Tokenization.Templates;

namespace MimoSharp.Tokenization.Tests;

/// <summary>The template interpreter against @huggingface/jinja on the Qwen3 template (tools/tokenizer-oracle/make_template_goldens.mjs).</summary>
public sealed class ChatTemplateTests
{
    private static readonly Lazy<JsonArray> s_cases = new(() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "qwen3-template-cases.json")))!["cases"]!.AsArray());

    private static readonly Lazy<ChatTemplate> s_qwen3 = new(() =>
        ChatTemplate.Parse(JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.TokenizerData, "qwen3", "tokenizer_config.json")))!["chat_template"]!.GetValue<string>()));

    public static TheoryData<int> Cases()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < s_cases.Value.Count; i++)
        {
            data.Add(i);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RendersExactlyAsTheReferenceEngine(int index)
    {
        JsonNode item = s_cases.Value[index]!;
        var variables = item["variables"]!.AsObject().ToDictionary(p => p.Key, p => p.Value?.DeepClone());
        string expected = item["rendered"]!.GetValue<string>();
        Assert.Equal(expected, s_qwen3.Value.Render(variables));
    }

    private static string Render(string template, string json = "{}") =>
        ChatTemplate.Parse(template).Render(JsonNode.Parse(json)!.AsObject().ToDictionary(p => p.Key, p => p.Value?.DeepClone()));

    [Theory]
    [InlineData("{{ 'a,b,,c'.split(',') | length }}", "4")]
    [InlineData("{{ [1, 2, 3][::-1] | join('-') }}", "3-2-1")]
    [InlineData("{{ 'hello'[1:3] }}{{ 'x' ~ 2 }}", "elx2")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }}{% if not loop.last %},{% endif %}{% endfor %}", "a=1,b=2")]
    [InlineData("{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}{{ greet('Bob') }}/{{ greet('Al', p='Yo') }}", "Hi Bob/Yo Al")]
    [InlineData("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "6")]
    [InlineData("{{ x is defined }} {{ y is string }} {{ none is none }} {{ 3 is odd }}", "False True True True")]
    [InlineData("{{ {'b': [1, 'two', none, true]} | tojson }}", "{\"b\": [1, \"two\", null, true]}")]
    [InlineData("  {%- if true -%}  yes  {%- endif -%}  !", "yes!")]
    [InlineData("{% for i in [1,2,3,4] %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}", "12")]
    [InlineData("{{ (7 // 2) ~ (7 % 3) ~ (2 ** 3) }} {{ 1 if false else 2 }}", "318 2")]
    public void SupportsTheSubsetTemplatesUse(string template, string expected) =>
        Assert.Equal(expected, Render(template, "{\"y\": \"s\"}"));

    [Theory]
    [InlineData("{% if x %}no end", "line 1", "never closed")]
    [InlineData("{% include 'other.jinja' %}", "line 1", "\"{% include %}\" statement is not supported")]
    [InlineData("line one\n{{ x | nosuchfilter }}", "line 2", "unknown filter \"nosuchfilter\"")]
    [InlineData("{{ 'a' + }}", "line 1", "unexpected")]
    [InlineData("{{ x", "line 1", "unclosed")]
    public void UnsupportedOrBrokenSyntaxNamesTheConstructAndLine(string template, string line, string message)
    {
        var ex = Assert.Throws<TemplateException>(() => Render(template));
        Assert.Contains(line, ex.Message);
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void RaiseExceptionReachesTheCaller()
    {
        var ex = Assert.Throws<TemplateException>(() => Render("{{ raise_exception('roles must alternate') }}"));
        Assert.Contains("roles must alternate", ex.Message);
    }
}
