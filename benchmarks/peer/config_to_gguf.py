#!/usr/bin/python3
"""Writes a random-weight F32 GGUF (llama.cpp arch "mimo2") with the geometry of a MimoSharp
config.json, using llama.cpp's own gguf-py, so llama.cpp and MimoSharp run the same shape.

Usage: PYTHONPATH=/tmp/llama.cpp/gguf-py /usr/bin/python3 config_to_gguf.py CONFIG.json OUT.gguf

llama.cpp's converter from Hugging Face needs PyPI packages this machine cannot install; this
writes the GGUF directly. MTP layers are not written (llama.cpp does not run them for decoding).
The vocabulary is a minimal SentencePiece-style list (<unk> <s> </s>, 256 byte tokens, fillers):
only its size matters for speed.
"""
import json
import sys

import numpy as np
import gguf

rng = np.random.default_rng(7)


def normal(*shape, std=0.02):
    values = rng.standard_normal(size=shape, dtype=np.float32)
    values *= std
    return values


def main(config_path, out_path):
    c = json.load(open(config_path))
    vocab, hidden, layers = c["vocab_size"], c["hidden_size"], c["num_hidden_layers"]
    sliding = [p == 1 for p in c["hybrid_layer_pattern"]]
    moe = [f == 1 for f in c["moe_layer_freq"]]
    heads, head_dim, v_dim = c["num_attention_heads"], c["head_dim"], c["v_head_dim"]
    assert c["swa_num_attention_heads"] == heads and c["swa_head_dim"] == head_dim and c["swa_v_head_dim"] == v_dim, \
        "llama.cpp's mimo2 needs the same q heads and head dims on both layer kinds"
    kv = [c["swa_num_key_value_heads"] if s else c["num_key_value_heads"] for s in sliding]
    rotary = int(head_dim * c["partial_rotary_factor"])

    w = gguf.GGUFWriter(out_path, "mimo2")
    w.add_name("mimosharp-side-by-side")
    w.add_context_length(32768)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(head_dim)
    w.add_value_length(v_dim)
    w.add_rope_dimension_count(rotary)
    w.add_rope_freq_base(float(c["rope_theta"]))
    w.add_rope_freq_base_swa(float(c["swa_rope_theta"]))
    w.add_layer_norm_rms_eps(float(c["layernorm_epsilon"]))
    w.add_sliding_window(c["sliding_window"])
    w.add_sliding_window_pattern(sliding)
    w.add_expert_count(c["n_routed_experts"])
    w.add_expert_used_count(c["num_experts_per_tok"])
    w.add_expert_feed_forward_length(c["moe_intermediate_size"])
    w.add_attn_value_scale(float(c.get("attention_value_scale") or 1.0))
    w.add_nextn_predict_layers(0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    tokens += [f"\u2581w{i}" for i in range(vocab - len(tokens))]
    types += [gguf.TokenType.NORMAL] * (vocab - len(types))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(vocab)])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    ones = lambda n: np.ones(n, dtype=np.float32)
    w.add_tensor("token_embd.weight", normal(vocab, hidden))
    w.add_tensor("output_norm.weight", ones(hidden))
    w.add_tensor("output.weight", normal(vocab, hidden))
    experts, expert_ff = c["n_routed_experts"], c["moe_intermediate_size"]
    for i in range(layers):
        p = f"blk.{i}"
        w.add_tensor(f"{p}.attn_norm.weight", ones(hidden))
        w.add_tensor(f"{p}.attn_q.weight", normal(heads * head_dim, hidden))
        w.add_tensor(f"{p}.attn_k.weight", normal(kv[i] * head_dim, hidden))
        w.add_tensor(f"{p}.attn_v.weight", normal(kv[i] * v_dim, hidden))
        w.add_tensor(f"{p}.attn_output.weight", normal(hidden, heads * v_dim))
        if sliding[i] and c.get("add_swa_attention_sink_bias"):
            w.add_tensor(f"{p}.attn_sinks.weight", normal(heads, std=1.0))
        w.add_tensor(f"{p}.ffn_norm.weight", ones(hidden))
        if moe[i]:
            w.add_tensor(f"{p}.ffn_gate_inp.weight", normal(experts, hidden, std=0.5))
            w.add_tensor(f"{p}.exp_probs_b.bias", normal(experts, std=0.1))
            w.add_tensor(f"{p}.ffn_gate_exps.weight", normal(experts, expert_ff, hidden))
            w.add_tensor(f"{p}.ffn_up_exps.weight", normal(experts, expert_ff, hidden))
            w.add_tensor(f"{p}.ffn_down_exps.weight", normal(experts, hidden, expert_ff))
        else:
            ff = c["intermediate_size"]
            w.add_tensor(f"{p}.ffn_gate.weight", normal(ff, hidden))
            w.add_tensor(f"{p}.ffn_up.weight", normal(ff, hidden))
            w.add_tensor(f"{p}.ffn_down.weight", normal(hidden, ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
