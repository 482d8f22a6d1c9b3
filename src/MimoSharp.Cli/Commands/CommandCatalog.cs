using System.CommandLine;

namespace MimoSharp.Cli.Commands;

/// <summary>Every `mimo` subcommand, one file each.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All(TextWriter output)
    {
        yield break;
    }
}
