using System.CommandLine;
using System.CommandLine.Parsing;
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
            ParseResult parse = root.Parse(args);
            // Parse errors and out-of-range flags are reported here, in the words of the flags, before any work.
            List<string> problems = ParseErrors.Describe(parse);
            if (problems.Count > 0)
            {
                foreach (string problem in problems)
                {
                    error.WriteLine($"error: {problem}");
                }
                error.WriteLine($"(see `mimo {CommandPath(parse)} --help`)");
                return 1;
            }
            return parse.Invoke(configuration);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The only place exceptions become exit codes: user-facing errors are one clear line.
            error.WriteLine($"error: {ParseErrors.MessageOf(ex)}");
            if (Environment.GetEnvironmentVariable("MIMO_DEBUG") == "1")
            {
                error.WriteLine(ex);
            }
            return 1;
        }
    }

    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (SymbolResult? s = parse.CommandResult; s is CommandResult c && c.Parent is not null; s = s.Parent)
        {
            names.Insert(0, c.Command.Name);
        }
        return string.Join(' ', names).Trim();
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
