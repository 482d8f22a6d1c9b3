using System.CommandLine;
using MimoSharp.Runtime.Sampling;

namespace MimoSharp.Cli.Commands;

/// <summary>Sampling options shared by generate and chat: a preset, then explicit flags over it.</summary>
internal sealed class SamplingFlags
{
    private readonly Option<string?> _preset = new("--preset") { Description = $"Sampling preset: {string.Join(", ", SamplingPresets.Names)}; explicit sampling flags given with it win over its values" };
    private readonly Option<float?> _temperature = new("--temperature") { Description = "0 = greedy" };
    private readonly Option<int?> _topK = new("--top-k") { Description = "Keep the k most likely tokens (0 = off)" };
    private readonly Option<float?> _topP = new("--top-p") { Description = "Nucleus sampling threshold in (0, 1]" };
    private readonly Option<float?> _minP = new("--min-p") { Description = "Drop tokens below min_p x the best" };
    private readonly Option<float?> _repetition = new("--repetition-penalty") { Description = "HF repetition penalty (1 = off)" };
    private readonly Option<float?> _presence = new("--presence-penalty") { Description = "OpenAI presence penalty" };
    private readonly Option<float?> _frequency = new("--frequency-penalty") { Description = "OpenAI frequency penalty" };
    private readonly Option<ulong?> _seed = new("--seed") { Description = "Seed for reproducible sampling" };

    public void AddTo(Command command)
    {
        foreach (Option option in new Option[] { _preset, _temperature, _topK, _topP, _minP, _repetition, _presence, _frequency, _seed })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>
    /// The options; greedy unless a preset or a temperature says otherwise. An explicit flag wins over the
    /// preset's value for it; the preset supplies the rest. Invalid values are refused naming the flag.
    /// </summary>
    public SamplingOptions Build(ParseResult parse, string? presetOverride = null)
    {
        string? preset = presetOverride ?? parse.GetValue(_preset);
        SamplingOptions options = preset is null ? new SamplingOptions { Temperature = 0f } : SamplingPresets.Get(preset);
        options = options with
        {
            Temperature = parse.GetValue(_temperature) ?? options.Temperature,
            TopK = parse.GetValue(_topK) ?? options.TopK,
            TopP = parse.GetValue(_topP) ?? options.TopP,
            MinP = parse.GetValue(_minP) ?? options.MinP,
            RepetitionPenalty = parse.GetValue(_repetition) ?? options.RepetitionPenalty,
            PresencePenalty = parse.GetValue(_presence) ?? options.PresencePenalty,
            FrequencyPenalty = parse.GetValue(_frequency) ?? options.FrequencyPenalty,
            Seed = parse.GetValue(_seed) ?? options.Seed,
        };
        try
        {
            return options.Validate();
        }
        catch (ArgumentException ex) when (ex.ParamName is string name && FlagOf(name) is string flag)
        {
            throw new ArgumentException($"{flag}: {ex.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal)}");
        }
    }

    public bool PresetGiven(ParseResult parse) => parse.GetValue(_preset) is not null;

    /// <summary>"--temperature 0.5 (the preset's 0.6)" for every explicit flag that overrides <paramref name="preset"/>.</summary>
    public IReadOnlyList<string> Overrides(ParseResult parse, string preset)
    {
        SamplingOptions p = SamplingPresets.Get(preset);
        var overrides = new List<string>();
        void Add<T>(Option<T?> option, T presetValue) where T : struct
        {
            if (parse.GetResult(option) is { Implicit: false } && parse.GetValue(option) is T value)
            {
                overrides.Add($"{option.Name} {value} (the preset's {presetValue})");
            }
        }
        Add(_temperature, p.Temperature);
        Add(_topK, p.TopK);
        Add(_topP, p.TopP);
        Add(_minP, p.MinP);
        Add(_repetition, p.RepetitionPenalty);
        Add(_presence, p.PresencePenalty);
        Add(_frequency, p.FrequencyPenalty);
        return overrides;
    }

    /// <summary>Writes to <paramref name="notes"/> which explicit flags override the preset (they win).</summary>
    public void NoteOverrides(ParseResult parse, TextWriter notes)
    {
        if (parse.GetValue(_preset) is string preset && Overrides(parse, preset) is { Count: > 0 } list)
        {
            notes.WriteLine($"note: explicit sampling flags win over --preset {preset}: {string.Join(", ", list)}");
        }
    }

    private static string? FlagOf(string parameter) => parameter switch
    {
        nameof(SamplingOptions.Temperature) => "--temperature",
        nameof(SamplingOptions.TopK) => "--top-k",
        nameof(SamplingOptions.TopP) => "--top-p",
        nameof(SamplingOptions.MinP) => "--min-p",
        nameof(SamplingOptions.RepetitionPenalty) => "--repetition-penalty",
        nameof(SamplingOptions.PresencePenalty) => "--presence-penalty",
        nameof(SamplingOptions.FrequencyPenalty) => "--frequency-penalty",
        nameof(SamplingOptions.MaxTokens) => "--max-tokens",
        _ => null,
    };
}
