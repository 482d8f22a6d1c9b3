using System.CommandLine;
using MimoSharp.Cli.Commands;

namespace MimoSharp.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error, Console.In);

    /// <summary>Runs the CLI with the given writers (tests call this in-process).</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error, TextReader? input = null)
    {
        var root = BuildRoot(output, input ?? TextReader.Null);
        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        try
        {
            return root.Parse(args).Invoke(configuration);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The only place exceptions become exit codes: user-facing errors are one clear line.
            error.WriteLine($"error: {ex.Message}");
            if (Environment.GetEnvironmentVariable("MIMO_DEBUG") == "1")
            {
                error.WriteLine(ex);
            }
            return 1;
        }
    }

    private static RootCommand BuildRoot(TextWriter output, TextReader input)
    {
        var root = new RootCommand("mimo: run, inspect and create MiMo-V2-Flash-architecture models");
        foreach (Command command in CommandCatalog.All(output, input))
        {
            root.Subcommands.Add(command);
        }
        return root;
    }
}
