using MimoSharp.Models.Configuration;

namespace MimoSharp.Models.Creation;

/// <summary>Named model geometries for random checkpoints: tiny (tests), small (benchmarks), flash (the real 309B config).</summary>
public static class ModelPresets
{
    public static IReadOnlyList<string> Names { get; } = ["tiny", "small", "flash"];

    public static MimoConfig Get(string name) => name switch
    {
        "tiny" => Build(vocab: 512, hidden: 64, intermediate: 128, moeIntermediate: 32, blocks: 1, slidingPerBlock: 5,
            heads: 4, headDim: 48, vDim: 32, globalKv: 1, slidingKv: 2, window: 16, experts: 8, topK: 2, block: 32, maxPositions: 4096),
        // The shape of the llama.cpp side-by-side benchmark: hidden 1024, 3 x (1 global + 5 sliding), 64 experts top-8.
        "small" => Build(vocab: 32000, hidden: 1024, intermediate: 4096, moeIntermediate: 512, blocks: 3, slidingPerBlock: 5,
            heads: 16, headDim: 192, vDim: 128, globalKv: 1, slidingKv: 2, window: 128, experts: 64, topK: 8, block: 128, maxPositions: 262144),
        "flash" => Flash(),
        _ => throw new ArgumentException($"unknown preset \"{name}\"; expected one of {string.Join(", ", Names)}"),
    };

    /// <summary>MiMo-V2-Flash as spec §1.2 gives it.</summary>
    private static MimoConfig Flash()
    {
        MimoConfig c = Build(vocab: 152576, hidden: 4096, intermediate: 16384, moeIntermediate: 2048, blocks: 0, slidingPerBlock: 0,
            heads: 64, headDim: 192, vDim: 128, globalKv: 4, slidingKv: 8, window: 128, experts: 256, topK: 8, block: 128, maxPositions: 262144,
            pattern: Enumerable.Range(0, 48).Select(i => i == 0 || (i + 1) % 6 == 0 ? 0 : 1).ToArray());
        return c with { RopeTheta = 5_000_000 };
    }

    private static MimoConfig Build(int vocab, int hidden, int intermediate, int moeIntermediate, int blocks, int slidingPerBlock,
        int heads, int headDim, int vDim, int globalKv, int slidingKv, int window, int experts, int topK, int block, int maxPositions,
        int[]? pattern = null)
    {
        pattern ??= Enumerable.Range(0, blocks * (1 + slidingPerBlock)).Select(i => i % (1 + slidingPerBlock) == 0 ? 0 : 1).ToArray();
        int layers = pattern.Length;
        var config = new MimoConfig
        {
            Architectures = ["MiMoV2FlashForCausalLM"],
            ModelType = "mimo_v2_flash",
            TorchDtype = "bfloat16",
            TransformersVersion = "4.40.1",
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = intermediate,
            MoeIntermediateSize = moeIntermediate,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = globalKv,
            HeadDim = headDim,
            VHeadDim = vDim,
            SwaNumAttentionHeads = heads,
            SwaNumKeyValueHeads = slidingKv,
            SwaHeadDim = headDim,
            SwaVHeadDim = vDim,
            PartialRotaryFactor = 0.334,
            RopeTheta = 5_000_000,
            SwaRopeTheta = 10_000,
            MaxPositionEmbeddings = maxPositions,
            SlidingWindow = window,
            SlidingWindowSize = window,
            AttentionChunkSize = window,
            HybridLayerPattern = pattern,
            MoeLayerFreq = Enumerable.Range(0, layers).Select(i => i == 0 ? 0 : 1).ToArray(),
            AddFullAttentionSinkBias = false,
            AddSwaAttentionSinkBias = true,
            AttentionValueScale = 0.707,
            HiddenAct = "silu",
            LayerNormEpsilon = 1e-5,
            InitializerRange = 0.02,
            NRoutedExperts = experts,
            NumExpertsPerTok = topK,
            ScoringFunc = "sigmoid",
            TopkMethod = "noaux_tc",
            NGroup = 1,
            TopkGroup = 1,
            NormTopkProb = true,
            TieWordEmbeddings = false,
            QuantizationConfig = new QuantizationConfig
            {
                QuantMethod = "fp8",
                Format = "e4m3",
                ActivationScheme = "dynamic",
                WeightBlockSize = [block, block],
                IgnoredLayers = Enumerable.Range(0, layers).Select(i => $"model.layers.{i}.self_attn.o_proj").ToArray(),
                PackedModulesMapping = [],
            },
        };
        return config.Validate();
    }
}
