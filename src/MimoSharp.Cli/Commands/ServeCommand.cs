using System.CommandLine;
using System.Runtime.InteropServices;
using MimoSharp.Server;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo serve`: the OpenAI- and Anthropic-compatible HTTP server.</summary>
internal static class ServeCommand
{
    public static Command Create(TextWriter output)
    {
        var model = CliParsing.ModelOption("Model directory");
        var host = new Option<string>("--host") { Description = "Address to bind (loopback by default)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port (0 picks a free one)", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require Authorization: Bearer KEY or x-api-key: KEY" };
        var parallel = new Option<int>("--parallel") { Description = "Sequences decoded at once", DefaultValueFactory = _ => 1 };
        var context = new Option<int?>("--context") { Description = "Context length in tokens (default: the model's)" };
        var draftTokens = new Option<int>("--draft-tokens") { Description = "MTP draft tokens per step, 0..3", DefaultValueFactory = _ => 0 };
        var name = new Option<string?>("--served-model-name") { Description = "The model id clients use (default: the directory's name)" };
        var maxOutput = new Option<int?>("--max-output-tokens") { Description = "Clamp every request's max_tokens to this" };
        var threads = new Option<int?>("--threads") { Description = "Kernel threads (default: one per core)" };
        var kvBudget = new Option<int>("--kv-budget-mb") { Description = "KV cache MiB the running sequences may reserve (admission refuses beyond it)", DefaultValueFactory = _ => 4096 };
        var command = new Command("serve", "Serve the model over OpenAI- and Anthropic-compatible HTTP APIs") { model, host, port, apiKey, parallel, context, draftTokens, name, maxOutput, threads, kvBudget };
        command.SetAction(async (parse, cancellationToken) =>
        {
            int drafts = parse.GetValue(draftTokens);
            if (drafts is < 0 or > 3)
            {
                throw new ArgumentException($"--draft-tokens must be 0..3, got {drafts}");
            }
            int p = parse.GetValue(port);
            if (p is < 0 or > 65535)
            {
                throw new ArgumentException($"--port must be 0..65535, got {p}");
            }
            int par = parse.GetValue(parallel);
            if (par < 1)
            {
                throw new ArgumentException($"--parallel must be at least 1, got {par}");
            }
            if (parse.GetValue(context) is int c && c < 1)
            {
                throw new ArgumentException($"--context must be at least 1, got {c}");
            }
            if (parse.GetValue(maxOutput) is int m && m < 1)
            {
                throw new ArgumentException($"--max-output-tokens must be at least 1, got {m}");
            }
            int kvMb = parse.GetValue(kvBudget);
            if (kvMb < 1)
            {
                throw new ArgumentException($"--kv-budget-mb must be at least 1, got {kvMb}");
            }
            string dir = CliParsing.ModelDirectory(parse, model);
            if (!Directory.Exists(dir))
            {
                throw new ArgumentException($"--model: no directory {dir}");
            }
            var options = new ServerOptions
            {
                ModelDirectory = dir,
                Host = parse.GetValue(host)!,
                Port = p,
                ApiKey = parse.GetValue(apiKey),
                Parallel = par,
                Context = parse.GetValue(context),
                DraftTokens = drafts,
                ServedModelName = parse.GetValue(name),
                MaxOutputTokens = parse.GetValue(maxOutput),
                Threads = parse.GetValue(threads),
                KvBudgetBytes = kvMb * (1L << 20),
                Log = output,
            };
            // Program.Run invokes actions synchronously, which leaves System.CommandLine's Ctrl+C / SIGTERM
            // handling off: without these a server ignores both (docker stop, systemd, a test harness).
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            void Stop(PosixSignalContext signal)
            {
                signal.Cancel = true; // shut down in order (requests end, the model is released), then exit 0
                stop.Cancel();
            }
            using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            await using MimoServer server = await MimoServer.StartAsync(options, stop.Token);
            output.WriteLine($"mimo serve: listening on {server.BaseUrl} (loading {dir})");
            output.Flush();
            try
            {
                await server.Ready.WaitAsync(stop.Token);
                output.WriteLine($"mimo serve: model \"{server.Host!.Name}\" ready, context {server.Host.Context} tokens");
                output.Flush();
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return 0; // stopped while loading
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException($"the model failed to load: {ex.Message}", ex);
            }
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C / SIGTERM
            }
            return 0;
        });
        return command;
    }
}
