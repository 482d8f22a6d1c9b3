using System.CommandLine;

namespace MimoSharp.Cli.Commands;

/// <summary>Every `mimo` subcommand, one file each.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All(TextWriter output, TextReader input)
    {
        yield return InspectCommand.Create(output);
        yield return CheckCommand.Create(output);
        yield return LogitsCommand.Create(output);
        yield return GenerateCommand.Create(output);
        yield return CreateRandomCommand.Create(output);
        yield return QuantizeCommand.Create(output);
        yield return BenchCommand.Create(output);
        yield return BenchBatchCommand.Create(output);
        yield return BenchServeCommand.Create(output);
        yield return ChatCommand.Create(output, input);
        yield return TokenizeCommand.Create(output);
        yield return TokenizeCommand.CreateDetokenize(output);
        yield return TemplateCommand.Create(output);
        yield return ServeCommand.Create(output);
        yield return TrainCommand.Create(output);
        yield return EvalCommand.Create(output);
        yield return TrainTokenizerCommand.Create(output);
        yield return DataCommand.Create(output);
    }
}
