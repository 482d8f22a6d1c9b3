using MimoSharp.Models.Configuration;
using MimoSharp.Models.Loading;

namespace MimoSharp.Training;

/// <summary>One trainable tensor: its Hugging Face name, shape and place in the flat parameter buffer.</summary>
public sealed record ParameterTensor(string Name, TensorRole Role, int[] Shape, int Offset, bool IsMtp)
{
    public int Length => Shape.Aggregate(1, (a, b) => a * b);

    /// <summary>AdamW decays matrices (projections, embedding, lm_head, router), not norms or sinks.</summary>
    public bool Decay => Shape.Length == 2;
}

/// <summary>
/// Every trainable tensor of a config, in checkpoint order (spec §4.2), laid out back to back in one
/// flat fp32 buffer (parameters, gradients and both AdamW moments share the layout). The routers'
/// correction biases are not trained by gradient and live apart (<see cref="RouterBiasLength"/>).
/// </summary>
public sealed class ParameterLayout
{
    private readonly Dictionary<string, ParameterTensor> _byName = new(StringComparer.Ordinal);

    public IReadOnlyList<ParameterTensor> Tensors { get; }
    public int Length { get; }
    public int MtpHeads { get; }
    public int RouterBiasLength { get; }

    public ParameterLayout(MimoConfig config, int mtpHeads)
    {
        var tensors = new List<ParameterTensor>();
        long offset = 0;
        int biases = 0;
        foreach (TensorSpec spec in CheckpointLayout.Enumerate(config, mtpHeads))
        {
            if (spec.Role == TensorRole.RouterBias)
            {
                biases += spec.Shape[0];
                continue;
            }
            var tensor = new ParameterTensor(spec.Name, spec.Role, spec.Shape, checked((int)offset), spec.IsMtp);
            tensors.Add(tensor);
            _byName[spec.Name] = tensor;
            offset += tensor.Length;
            if (offset > int.MaxValue)
            {
                throw new ArgumentException($"the model has more than {int.MaxValue} parameters; the trainer's flat buffers hold at most that");
            }
        }
        Tensors = tensors;
        Length = (int)offset;
        MtpHeads = mtpHeads;
        RouterBiasLength = biases;
    }

    public ParameterTensor this[string name] =>
        _byName.TryGetValue(name, out ParameterTensor? t) ? t : throw new KeyNotFoundException($"no trainable tensor \"{name}\"");

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The tensor holding flat index <paramref name="index"/>.</summary>
    public ParameterTensor At(int index)
    {
        int lo = 0, hi = Tensors.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (Tensors[mid].Offset <= index)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return Tensors[lo];
    }
}
