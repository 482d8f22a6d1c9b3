using BenchmarkDotNet.Running;

// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- --filter '*'
// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- accuracy MODEL_DIR [PROMPTS] [PROMPT_TOKENS] [GEN_TOKENS] [ISA]
// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- mtp MODEL_DIR DATA_DIR [PROMPTS] [PROMPT_TOKENS] [GEN_TOKENS] [ROUNDS] [THREADS]
// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- step-cost MODEL_DIR [PROMPT] [ITERATIONS] [THREADS]
// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- product-bandwidth [MB] [REPS] [THREADS]
// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- product-compute [MILLISECONDS] [ISA] [TOKENS] [SHAPES]
if (args.Length > 1 && args[0] == "step-cost")
{
    return MimoSharp.Benchmarks.Speculative.StepCost.Run(args);
}
if (args.Length > 0 && args[0] == "product-bandwidth")
{
    return MimoSharp.Benchmarks.Kernels.ProductBandwidth.Run(args);
}
if (args.Length > 0 && args[0] == "product-compute")
{
    return MimoSharp.Benchmarks.Kernels.ProductCompute.Run(args);
}
if (args.Length > 2 && args[0] == "mtp")
{
    return MimoSharp.Benchmarks.Speculative.MtpAcceptance.Run(args);
}
if (args.Length > 1 && args[0] == "accuracy")
{
    return MimoSharp.Benchmarks.Accuracy.ActivationAccuracy.Run(args);
}
BenchmarkSwitcher.FromAssembly(typeof(MimoSharp.Benchmarks.Kernels.MatMulBenchmarks).Assembly).Run(args);
return 0;
