using BenchmarkDotNet.Running;

// dotnet run -c Release --project benchmarks/MimoSharp.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(MimoSharp.Benchmarks.Kernels.MatMulBenchmarks).Assembly).Run(args);
