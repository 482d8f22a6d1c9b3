using MimoSharp.Models.Loading;

namespace MimoSharp.Models.Creation;

/// <summary>Writes tensors as a Hugging Face checkpoint: one model.safetensors, or shards plus the index.</summary>
public static class CheckpointWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> in order; with <paramref name="maxShardBytes"/>, starts a new shard when one
    /// would pass that size, never separating a weight from the scales that follow it ("X.weight_scale_inv",
    /// "X.weight_scale").
    /// </summary>
    /// <param name="progress">Called after each tensor with the tensor bytes written so far.</param>
    public static void Write(string directory, IReadOnlyList<TensorToWrite> tensors, long? maxShardBytes, Action<long>? progress = null)
    {
        long written = 0;
        Action<TensorToWrite>? done = progress is null ? null : t => progress(written += t.ByteLength);
        System.IO.Directory.CreateDirectory(directory);
        if (maxShardBytes is not long maxShard)
        {
            SafetensorsWriter.Write(Path.Combine(directory, Checkpoint.SingleFileName), tensors, tensorWritten: done);
            return;
        }
        var shards = new List<List<TensorToWrite>> { new() };
        long shardBytes = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            int last = i;
            while (last + 1 < tensors.Count && IsScaleOf(tensors[last + 1].Name, tensors[i].Name))
            {
                last++;
            }
            long bytes = 0;
            for (int k = i; k <= last; k++)
            {
                bytes += tensors[k].ByteLength;
            }
            if (shardBytes > 0 && shardBytes + bytes > maxShard)
            {
                shards.Add([]);
                shardBytes = 0;
            }
            for (int k = i; k <= last; k++)
            {
                shards[^1].Add(tensors[k]);
            }
            shardBytes += bytes;
            i = last;
        }
        var weightMap = new Dictionary<string, string>();
        for (int s = 0; s < shards.Count; s++)
        {
            string file = $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafetensorsWriter.Write(Path.Combine(directory, file), shards[s], tensorWritten: done);
            foreach (TensorToWrite t in shards[s])
            {
                weightMap[t.Name] = file;
            }
        }
        SafetensorsWriter.WriteIndex(Path.Combine(directory, Checkpoint.IndexFileName), weightMap, tensors.Sum(t => t.ByteLength));
    }

    private static bool IsScaleOf(string name, string weight) =>
        name == weight + "_scale_inv" || name == weight + "_scale";
}
