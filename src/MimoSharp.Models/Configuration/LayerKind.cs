namespace MimoSharp.Models.Configuration;

/// <summary>The attention type of a decoder layer, as `hybrid_layer_pattern` spells it (0 global, 1 sliding).</summary>
public enum LayerKind
{
    GlobalAttention = 0,
    SlidingWindowAttention = 1,
}

/// <summary>
/// How many keys a sliding-window query sees. Implementations disagree by one (spec §2.4):
/// Hugging Face, vLLM and llama.cpp show query i the keys i-w+1..i (w keys); SGLang shows i-w..i.
/// </summary>
public enum SlidingWindowConvention
{
    /// <summary>w keys including the query's own (HF, vLLM, llama.cpp): the default.</summary>
    HuggingFace,
    /// <summary>w + 1 keys (SGLang's FA3 backend with MiMo's un-decremented window).</summary>
    SGLang,
}
