using System.CommandLine;
using MimoSharp.Tensors.Threading;
using MimoSharp.Training;

namespace MimoSharp.Cli.Commands;

/// <summary>`mimo train`: trains a MiMo-V2-Flash-architecture model from scratch (or resumes a run) on a `mimo data` directory.</summary>
internal static class TrainCommand
{
    public static Command Create(TextWriter output)
    {
        var config = new Option<string?>("--config") { Description = "Training config JSON: {\"model\": {config.json keys}, \"steps\": ..., ...}" };
        var data = new Option<string?>("--data") { Description = "Data directory: train.bin, val.bin (llm.c format), tokenizer.json, tokenizer_config.json" };
        var outputDir = new Option<string?>("--output") { Description = "Run directory: checkpoint/, model/ (HF layout), metrics.jsonl" };
        var steps = new Option<int?>("--steps") { Description = "Total steps of the schedule (overrides the config's \"steps\")" };
        var resume = new Option<string?>("--resume") { Description = "Continue the run saved in this directory from its last checkpoint" };
        var threads = new Option<int?>("--threads") { Description = "Threads (default: one per core)" };
        var command = new Command("train", "Train a model from scratch, or resume a run, with progress, held-out evaluation and checkpoints")
        {
            config, data, outputDir, steps, resume, threads,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(steps) is int s && s <= 0)
            {
                throw new ArgumentException($"--steps must be positive, got {s}");
            }
            using WorkerPool? pool = parse.GetValue(threads) is int t ? new WorkerPool(t > 0 ? t : throw new ArgumentException($"--threads must be positive, got {t}")) : null;
            TrainingRun run;
            if (parse.GetValue(resume) is string resumeDir)
            {
                run = TrainingRun.Resume(resumeDir, parse.GetValue(data), parse.GetValue(outputDir), parse.GetValue(steps), output, pool);
            }
            else
            {
                string configPath = parse.GetValue(config) ?? throw new ArgumentException("give --config FILE.json (or --resume DIR to continue a run)");
                string dataDir = parse.GetValue(data) ?? throw new ArgumentException("give --data DIR (a `mimo data` output directory)");
                string outDir = parse.GetValue(outputDir) ?? throw new ArgumentException("give --output DIR for checkpoints and the trained model");
                TrainingConfig c = TrainingConfig.Load(configPath);
                if (parse.GetValue(steps) is int total)
                {
                    c = c with { Steps = total };
                }
                run = TrainingRun.Start(c, dataDir, outDir, output, pool);
            }
            using var cancel = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                e.Cancel = true;
                output.WriteLine("interrupted: writing a checkpoint (resume with --resume)");
                cancel.Cancel();
            };
            Console.CancelKeyPress += onCancel;
            try
            {
                run.Run(cancel: cancel.Token);
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
            output.WriteLine($"trained model: {run.ModelDirectory}");
            return 0;
        });
        return command;
    }
}
