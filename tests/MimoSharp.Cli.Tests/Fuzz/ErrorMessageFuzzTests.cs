using System.Text;
using System.Text.Json.Nodes;

namespace MimoSharp.Cli.Tests.Fuzz;

/// <summary>Issue 11, class 3: every error names the file (and inside it the tensor or key), what was found and what was expected.</summary>
public sealed class ErrorMessageFuzzTests
{
    [Fact]
    public void ADuplicateConfigKeyIsNamed()
    {
        string model = FuzzKit.CopyOfModel("dup-key");
        string path = Path.Combine(model, "config.json");
        File.WriteAllText(path, File.ReadAllText(path).TrimEnd()[..^1] + ", \"my_key\": 1, \"my_key\": 2}");
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", model), "config.json", "\"my_key\"", "appears twice", "expected each key once");
    }

    [Fact]
    public void AConfigValueOfTheWrongTypeNamesTheKeyAndTheExpectedType()
    {
        string model = FuzzKit.CopyOfModel("wrong-type");
        FuzzKit.EditConfig(model, o => o["hidden_size"] = "sixty-four");
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", model), "config.json", "\"hidden_size\"", "expected an integer");
        FuzzKit.EditConfig(model, o => { o["hidden_size"] = 64; o["quantization_config"]!["weight_block_size"] = new JsonArray(32, "x"); });
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", model), "config.json", "weight_block_size", "expected an integer");
        FuzzKit.EditConfig(model, o => { o["quantization_config"]!["weight_block_size"] = new JsonArray(32, 32); o["num_hidden_layers"] = 3e9; });
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", model), "config.json", "\"num_hidden_layers\"", "expected an integer in -2147483648..2147483647");
    }

    [Fact]
    public void InvalidUtf8IsNamedWithItsByteOffset()
    {
        string model = FuzzKit.CopyOfModel("utf8");
        string path = Path.Combine(model, "config.json");
        byte[] bytes = File.ReadAllBytes(path);
        bytes[20] = 0xFF;
        File.WriteAllBytes(path, bytes);
        FuzzKit.AssertClearError(FuzzKit.Run("inspect", "--model", model), "config.json", "not valid UTF-8", "at byte 20");

        string header = FuzzKit.CopyOfModel("utf8-header");
        (string text, byte[] data) = FuzzKit.ReadSafetensors(FuzzKit.SafetensorsPath(header));
        byte[] raw = Encoding.UTF8.GetBytes(text.Replace("model.norm.weight", "model.norm.weigh\u00e9"));
        int at = Array.IndexOf(raw, (byte)0xC3);
        raw[at] = 0xC0; // an overlong encoding: invalid
        FuzzKit.WriteSafetensors(FuzzKit.SafetensorsPath(header), raw, data);
        FuzzKit.AssertClearError(FuzzKit.Run("check", "--model", header), "model.safetensors", "header", "not valid UTF-8");
    }

    [Fact]
    public void HeaderEntriesOfTheWrongKindAreNamed()
    {
        string model = FuzzKit.CopyOfModel("offsets");
        FuzzKit.EditHeader(model, h => h["model.norm.weight"]!["data_offsets"] = new JsonArray("0", "128"));
        FuzzKit.AssertClearError(FuzzKit.Run("check", "--model", model), "model.safetensors", "tensor \"model.norm.weight\"", "data_offsets", "must be two integers");
    }

    [Fact]
    public void ADuplicateTensorInTheHeaderIsNamed()
    {
        string model = FuzzKit.CopyOfModel("dup-tensor");
        (string text, byte[] data) = FuzzKit.ReadSafetensors(FuzzKit.SafetensorsPath(model));
        JsonNode entry = JsonNode.Parse(text)!["model.norm.weight"]!;
        string doubled = text.TrimEnd()[..^1] + ", \"model.norm.weight\": " + entry.ToJsonString() + "}";
        FuzzKit.WriteSafetensors(FuzzKit.SafetensorsPath(model), Encoding.UTF8.GetBytes(doubled), data);
        FuzzKit.AssertClearError(FuzzKit.Run("check", "--model", model), "model.safetensors", "header is not valid JSON", "\"model.norm.weight\"", "appears twice");
    }

    [Fact]
    public void AnEmptySafetensorsFileIsNamed()
    {
        string model = FuzzKit.CopyOfModel("empty");
        File.WriteAllBytes(FuzzKit.SafetensorsPath(model), []);
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--ids", "1"), "model.safetensors", "empty");
    }

    [Fact]
    public void AnHtmlTokenizerConfigIsNamed()
    {
        // What a failed download leaves behind.
        string model = FuzzKit.CopyOfModel("html");
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), "<html><body>404</body></html>");
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--prompt", "hi"), "tokenizer_config.json", "invalid JSON", "line 1, column 1");
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), "[1, 2]");
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--prompt", "hi"), "tokenizer_config.json", "expected an object");
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), "{}");
        File.WriteAllText(Path.Combine(model, "tokenizer.json"), "{\"model\": 3}");
        FuzzKit.AssertClearError(FuzzKit.Run("tokenize", "--model", model, "--text", "hi"), "tokenizer.json", "structure of a Hugging Face tokenizer.json");
    }

    [Theory]
    [InlineData("--temperature", "abc", "a number")]
    [InlineData("--max-tokens", "99999999999", "an integer")]
    [InlineData("--seed", "-1", "a non-negative integer")]
    [InlineData("--draft-tokens", "two", "an integer")]
    public void TheParserNamesTheFlagAndNoClrType(string flag, string value, string expected)
    {
        string model = FuzzKit.CopyOfModel("parse");
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--ids", "1", flag, value), flag, $"\"{value}\"", expected);
    }

    [Fact]
    public void EnumFlagsListTheirValues()
    {
        FuzzKit.AssertClearError(FuzzKit.Run("bench", "--model", "x", "--weights", "ram"), "--weights", "\"ram\"", "one of Auto, Read, Map");
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", "x", "--ids", "1", "--window-convention", "llama"), "--window-convention", "one of HuggingFace, SGLang");
    }

    [Theory]
    [InlineData("--temperature", "-1", "temperature must be >= 0")]
    [InlineData("--top-p", "1.5", "top_p must be in (0, 1]")]
    [InlineData("--presence-penalty", "9", "presence_penalty must be in [-2, 2]")]
    public void SamplingValuesAreRefusedNamingTheFlag(string flag, string value, string expected)
    {
        string model = FuzzKit.CopyOfModel("sampling");
        FuzzKit.AssertClearError(FuzzKit.Run("generate", "--model", model, "--ids", "1", flag, value), flag + ":", expected);
    }

    [Fact]
    public void OutputsIntoMissingOrUnwritablePlacesAreNamedBeforeTheWork()
    {
        string model = FuzzKit.CopyOfModel("outputs");
        string missing = Path.Combine(FuzzKit.NewDirectory("missing"), "no", "such", "main.npy");
        FuzzKit.Outcome outcome = FuzzKit.Run("logits", "--model", model, "--ids", "1,2", "--output", missing);
        FuzzKit.AssertClearError(outcome, "--output", missing, "does not exist", "create it first");
        string asDirectory = FuzzKit.NewDirectory("is-dir");
        FuzzKit.AssertClearError(FuzzKit.Run("logits", "--model", model, "--ids", "1,2", "--output", asDirectory), "--output", "is a directory");
        if (Directory.Exists("/proc/self"))
        {
            // Not even root may create files in /proc.
            FuzzKit.AssertClearError(FuzzKit.Run("logits", "--model", model, "--ids", "1,2", "--output", "/proc/mimosharp.npy"), "--output", "/proc/mimosharp.npy", "cannot write in /proc");
            FuzzKit.AssertClearError(FuzzKit.Run("create-random", "--preset", "tiny", "--output", "/proc/mimosharp-model"), "--output", "/proc/mimosharp-model", "nothing was written");
        }
    }
}
