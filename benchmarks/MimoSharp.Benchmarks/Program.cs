using BenchmarkDotNet.Running;

// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- --filter '*'
// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- accuracy MODEL_DIR [PROMPTS] [PROMPT_TOKENS] [GEN_TOKENS] [ISA]
if (args.Length > 1 && args[0] == "accuracy")
{
    return MimoSharp.Benchmarks.Accuracy.ActivationAccuracy.Run(args);
}
BenchmarkSwitcher.FromAssembly(typeof(MimoSharp.Benchmarks.Kernels.MatMulBenchmarks).Assembly).Run(args);
return 0;
