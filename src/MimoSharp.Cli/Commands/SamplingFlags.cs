using System.CommandLine;
using MimoSharp.Runtime.Sampling;

namespace MimoSharp.Cli.Commands;

/// <summary>Sampling options shared by generate and chat: a preset, then explicit flags over it.</summary>
internal sealed class SamplingFlags
{
    private readonly Option<string?> _preset = new("--preset") { Description = $"Sampling preset: {string.Join(", ", SamplingPresets.Names)}" };
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

    /// <summary>The options; greedy unless a preset or a temperature says otherwise.</summary>
    public SamplingOptions Build(ParseResult parse, string? presetOverride = null)
    {
        string? preset = presetOverride ?? parse.GetValue(_preset);
        SamplingOptions options = preset is null ? new SamplingOptions { Temperature = 0f } : SamplingPresets.Get(preset);
        return options with
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
    }

    public bool PresetGiven(ParseResult parse) => parse.GetValue(_preset) is not null;
}
