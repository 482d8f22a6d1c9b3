using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MimoSharp.Tensors.Kernels;
using Xunit;
using Xunit.Sdk;

// Every [Fact] and every [Theory] row of MimoSharp.Tensors.Tests, invoked directly (no test host):
// the kernel-equality suite (each path against its float64 twin) on whatever CPU this runs on.
// Usage: Arm64Check [NAME-FILTER]; prints one line per failure and ends with "N passed, N failed".
string? filter = args.Length > 0 ? args[0] : null;
Console.WriteLine($"{RuntimeInformation.ProcessArchitecture}, {RuntimeInformation.FrameworkDescription}; kernel paths: {string.Join(", ", KernelIsas.Supported)}; Vector128 accelerated: {Vector128.IsHardwareAccelerated}; ARM64 sdot: {System.Runtime.Intrinsics.Arm.Dp.IsSupported}");
Assembly tests = typeof(MimoSharp.Tensors.Tests.CoreKernelTests).Assembly;
int passed = 0, failed = 0;
foreach (Type type in tests.GetTypes().Where(t => t.IsClass && t.IsPublic && !t.IsAbstract).OrderBy(t => t.Name))
{
    foreach (MethodInfo method in type.GetMethods().Where(m => m.GetCustomAttribute<FactAttribute>() is { Skip: null }).OrderBy(m => m.Name))
    {
        string name = $"{type.Name}.{method.Name}";
        if (filter is not null && !name.Contains(filter, StringComparison.OrdinalIgnoreCase))
        {
            continue;
        }
        IEnumerable<object?[]> rows = method.GetCustomAttribute<TheoryAttribute>() is null
            ? [[]]
            : method.GetCustomAttributes<DataAttribute>().SelectMany(d => d.GetData(method));
        foreach (object?[] row in rows)
        {
            object? instance = method.IsStatic ? null : Activator.CreateInstance(type);
            try
            {
                method.Invoke(instance, row);
                passed++;
            }
            catch (TargetInvocationException ex)
            {
                failed++;
                string message = ex.InnerException?.Message ?? ex.Message;
                Console.WriteLine($"FAIL {name}({string.Join(", ", row)}): {message[..Math.Min(message.Length, 400)]}");
            }
            finally
            {
                (instance as IDisposable)?.Dispose();
            }
        }
    }
}
Console.WriteLine($"{passed} passed, {failed} failed");
return failed == 0 ? 0 : 1;
