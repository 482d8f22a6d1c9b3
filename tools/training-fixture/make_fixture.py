#!/usr/bin/python3
"""Writes testdata/training-fixture: a tiny random MiMo-V2-Flash model, its loss and every gradient on a
batch, and 10 AdamW steps, computed by PyTorch (Debian's python3-torch 1.13) in float64 with autograd.

Independent of the C# trainer: the forward is written here from the spec (partial NeoX RoPE with
per-type theta, GQA, value scale, sink logit as an extra softmax column, sigmoid router with the
correction bias used for selection only and group-limited top-k, normalised weights times
routed_scaling_factor, MTP heads eh_proj over [enorm(E[t+k+1]); hnorm(h)]), gradients come from
autograd, the optimizer is torch.optim.AdamW, clipping is torch.nn.utils.clip_grad_norm_.

Run once: /usr/bin/python3 tools/training-fixture/make_fixture.py   (writes into testdata/training-fixture)
"""
import json
import math
import os
import struct

import torch

torch.set_default_dtype(torch.float64)
torch.manual_seed(20251201)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata", "training-fixture")

config = {
    "architectures": ["MiMoV2FlashForCausalLM"], "model_type": "mimo_v2_flash",
    "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "moe_intermediate_size": 16,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 12, "v_head_dim": 8,
    "swa_num_attention_heads": 4, "swa_num_key_value_heads": 2, "swa_head_dim": 12, "swa_v_head_dim": 8,
    "partial_rotary_factor": 0.334, "rope_theta": 500000.0, "swa_rope_theta": 10000.0, "rope_scaling": None,
    "max_position_embeddings": 64, "sliding_window": 5, "sliding_window_size": 5,
    "hybrid_layer_pattern": [0, 1, 0], "moe_layer_freq": [0, 1, 1],
    "add_full_attention_sink_bias": False, "add_swa_attention_sink_bias": True, "attention_value_scale": 0.707,
    "attention_bias": False, "hidden_act": "silu", "layernorm_epsilon": 1e-5, "initializer_range": 0.02,
    "n_routed_experts": 6, "num_experts_per_tok": 2, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
    "n_group": 3, "topk_group": 2, "norm_topk_prob": True, "routed_scaling_factor": 1.5, "tie_word_embeddings": False,
}
MTP_HEADS = 2
BATCH, SEQ = 2, 12
TPS = SEQ + 1 + MTP_HEADS
train = {"learning_rate": 3e-3, "min_learning_rate": 3e-4, "warmup_steps": 3, "decay_steps": 4, "steps": 10,
         "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "epsilon": 1e-8, "grad_clip": 1.0,
         "router_bias_gamma": 1e-3, "mtp_loss_weight": 0.3}

c = config
H, V, EPS = c["hidden_size"], c["vocab_size"], c["layernorm_epsilon"]


def geometry(sliding):
    if sliding:
        return dict(nq=c["swa_num_attention_heads"], nkv=c["swa_num_key_value_heads"], dh=c["swa_head_dim"], dv=c["swa_v_head_dim"],
                    theta=c["swa_rope_theta"], sink=c["add_swa_attention_sink_bias"], window=c["sliding_window"])
    return dict(nq=c["num_attention_heads"], nkv=c["num_key_value_heads"], dh=c["head_dim"], dv=c["v_head_dim"],
                theta=c["rope_theta"], sink=c["add_full_attention_sink_bias"], window=0)


# ---- parameters, in checkpoint order, named as the HF checkpoint names them
params = {}


def mat(name, rows, cols, std=0.2):
    params[name] = torch.randn(rows, cols) * std


def vec(name, n, mean=1.0, std=0.1):
    params[name] = mean + torch.randn(n) * std


def attn_params(p, g):
    mat(p + ".q_proj.weight", g["nq"] * g["dh"], H)
    mat(p + ".k_proj.weight", g["nkv"] * g["dh"], H)
    mat(p + ".v_proj.weight", g["nkv"] * g["dv"], H)
    mat(p + ".o_proj.weight", H, g["nq"] * g["dv"])
    if g["sink"]:
        vec(p + ".attention_sink_bias", g["nq"], 0.0, 1.0)


def mlp_params(p, width):
    mat(p + ".gate_proj.weight", width, H)
    mat(p + ".up_proj.weight", width, H)
    mat(p + ".down_proj.weight", H, width)


mat("model.embed_tokens.weight", V, H, 1.0)
router_bias = []
for i in range(c["num_hidden_layers"]):
    p = f"model.layers.{i}"
    vec(p + ".input_layernorm.weight", H)
    attn_params(p + ".self_attn", geometry(c["hybrid_layer_pattern"][i] == 1))
    vec(p + ".post_attention_layernorm.weight", H)
    if c["moe_layer_freq"][i]:
        mat(p + ".mlp.gate.weight", c["n_routed_experts"], H)
        router_bias.append(torch.randn(c["n_routed_experts"]) * 0.02)
        for e in range(c["n_routed_experts"]):
            mlp_params(f"{p}.mlp.experts.{e}", c["moe_intermediate_size"])
    else:
        mlp_params(p + ".mlp", c["intermediate_size"])
vec("model.norm.weight", H)
mat("lm_head.weight", V, H)
for k in range(MTP_HEADS):
    p = f"model.mtp.layers.{k}"
    vec(p + ".enorm.weight", H)
    vec(p + ".hnorm.weight", H)
    mat(p + ".eh_proj.weight", H, 2 * H)
    vec(p + ".input_layernorm.weight", H)
    attn_params(p + ".self_attn", geometry(True))
    vec(p + ".pre_mlp_layernorm.weight", H)
    mlp_params(p + ".mlp", c["intermediate_size"])
    vec(p + ".final_layernorm.weight", H)

initial = {k: v.clone() for k, v in params.items()}
initial_bias = torch.cat(router_bias).clone()
for v in params.values():
    v.requires_grad_(True)


# ---- the forward, from the spec
def rms(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def rope(x, theta):  # x [B, T, heads, dh]
    dh = x.shape[-1]
    rot = int(dh * c["partial_rotary_factor"])
    inv = 1.0 / (theta ** (torch.arange(0, rot, 2) / rot))
    ang = torch.arange(x.shape[1])[:, None] * inv[None, :]  # [T, rot/2]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2, rest = x[..., : rot // 2], x[..., rot // 2: rot], x[..., rot:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)


def attention(a, p, g):
    B, T, _ = a.shape
    q = (a @ params[p + ".q_proj.weight"].T).view(B, T, g["nq"], g["dh"])
    k = (a @ params[p + ".k_proj.weight"].T).view(B, T, g["nkv"], g["dh"])
    v = (a @ params[p + ".v_proj.weight"].T).view(B, T, g["nkv"], g["dv"]) * c["attention_value_scale"]
    q, k = rope(q, g["theta"]), rope(k, g["theta"])
    group = g["nq"] // g["nkv"]
    k = k.repeat_interleave(group, dim=2)  # query head h uses kv head h // group
    v = v.repeat_interleave(group, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(g["dh"])
    t = torch.arange(T)
    visible = t[None, :] <= t[:, None]
    if g["window"]:
        visible = visible & (t[:, None] - t[None, :] < g["window"])
    scores = scores.masked_fill(~visible, float("-inf"))
    if g["sink"]:
        sink = params[p + ".attention_sink_bias"].view(1, -1, 1, 1).expand(B, -1, T, 1)
        probs = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]
    else:
        probs = torch.softmax(scores, dim=-1)
    o = torch.einsum("bhts,bshd->bthd", probs, v).reshape(B, T, g["nq"] * g["dv"])
    return o @ params[p + ".o_proj.weight"].T


def mlp(x, p):
    return (torch.nn.functional.silu(x @ params[p + ".gate_proj.weight"].T) * (x @ params[p + ".up_proj.weight"].T)) @ params[p + ".down_proj.weight"].T


def moe(x, p, bias):
    B, T, _ = x.shape
    xs = x.reshape(B * T, H)
    E, K = c["n_routed_experts"], c["num_experts_per_tok"]
    scores = torch.sigmoid(xs @ params[p + ".gate.weight"].T)
    choice = scores.detach() + bias
    groups, keep_groups = c["n_group"], c["topk_group"]
    grouped = choice.view(-1, groups, E // groups)
    group_scores = grouped.topk(2, dim=-1).values.sum(-1)
    keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, group_scores.topk(keep_groups, dim=-1).indices, True)
    choice = grouped.masked_fill(~keep[..., None], float("-inf")).view(-1, E)
    selected = choice.topk(K, dim=-1).indices  # [rows, K]
    weights = scores.gather(1, selected)
    weights = weights / (weights.sum(-1, keepdim=True) + 1e-20) * c["routed_scaling_factor"]
    out = torch.zeros_like(xs)
    for e in range(E):
        rows, slot = (selected == e).nonzero(as_tuple=True)
        if rows.numel():
            out = out.index_add(0, rows, weights[rows, slot, None] * mlp(xs[rows], f"{p}.experts.{e}"))
    load = torch.bincount(selected.flatten(), minlength=E)
    return out.view(B, T, H), load


def forward(tokens, bias):
    """tokens [B, TPS] -> (total, main, mtp mean, loads per MoE layer)"""
    E_ = params["model.embed_tokens.weight"]
    x = E_[tokens[:, :SEQ]]
    loads = []
    bias_index = 0
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        x = x + attention(rms(x, params[p + ".input_layernorm.weight"]), p + ".self_attn", geometry(c["hybrid_layer_pattern"][i] == 1))
        m = rms(x, params[p + ".post_attention_layernorm.weight"])
        if c["moe_layer_freq"][i]:
            y, load = moe(m, p + ".mlp", bias[bias_index * c["n_routed_experts"]:(bias_index + 1) * c["n_routed_experts"]])
            bias_index += 1
            loads.append(load)
        else:
            y = mlp(m, p + ".mlp")
        x = x + y
    hidden = x  # pre-norm, what the MTP heads read
    ce = torch.nn.functional.cross_entropy
    logits = rms(hidden, params["model.norm.weight"]) @ params["lm_head.weight"].T
    main = ce(logits.reshape(-1, V), tokens[:, 1:SEQ + 1].reshape(-1))
    head_losses = []
    for k in range(MTP_HEADS):
        p = f"model.mtp.layers.{k}"
        emb = E_[tokens[:, k + 1:k + 1 + SEQ]]
        z = torch.cat([rms(emb, params[p + ".enorm.weight"]), rms(hidden, params[p + ".hnorm.weight"])], dim=-1) @ params[p + ".eh_proj.weight"].T
        z = z + attention(rms(z, params[p + ".input_layernorm.weight"]), p + ".self_attn", geometry(True))
        z = z + mlp(rms(z, params[p + ".pre_mlp_layernorm.weight"]), p + ".mlp")
        head_logits = rms(z, params[p + ".final_layernorm.weight"]) @ params["lm_head.weight"].T
        head_losses.append(ce(head_logits.reshape(-1, V), tokens[:, k + 2:k + 2 + SEQ].reshape(-1)))
    mtp = sum(head_losses) / MTP_HEADS
    return main + train["mtp_loss_weight"] * mtp, main, mtp, loads


def lr_at(step):
    """Warmup-stable-decay: linear warmup to the peak, flat, then linear to the minimum over the last decay_steps."""
    peak, low, warm, decay, total = train["learning_rate"], train["min_learning_rate"], train["warmup_steps"], train["decay_steps"], train["steps"]
    if step < warm:
        return peak * (step + 1) / warm
    start = total - decay
    if step < start:
        return peak
    return peak + (low - peak) * (step - start + 1) / decay


batches = torch.randint(0, V, (train["steps"], BATCH, TPS))
decay_params = [v for v in params.values() if v.dim() == 2]
other_params = [v for v in params.values() if v.dim() != 2]
opt = torch.optim.AdamW([{"params": decay_params, "weight_decay": train["weight_decay"]}, {"params": other_params, "weight_decay": 0.0}],
                        lr=train["learning_rate"], betas=(train["beta1"], train["beta2"]), eps=train["epsilon"])
bias = initial_bias.clone()
losses = []
first_grads = None
for step in range(train["steps"]):
    opt.zero_grad()
    total, main, mtp, loads = forward(batches[step], bias)
    total.backward()
    if step == 0:
        first_grads = {k: v.grad.clone() for k, v in params.items()}
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), train["grad_clip"])
    for group in opt.param_groups:
        group["lr"] = lr_at(step)
    opt.step()
    # auxiliary-loss-free balance: bias += gamma * sign(mean load - load)
    parts = []
    for i, load in enumerate(loads):
        load = load.double()
        parts.append(bias[i * c["n_routed_experts"]:(i + 1) * c["n_routed_experts"]] + train["router_bias_gamma"] * torch.sign(load.mean() - load))
    bias = torch.cat(parts)
    losses.append({"total": total.item(), "main": main.item(), "mtp": mtp.item(), "grad_norm": norm.item(), "lr": lr_at(step)})
    print(f"step {step}: total {total.item():.6f} main {main.item():.6f} mtp {mtp.item():.6f} |g| {norm.item():.4f}")


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().double().numpy().tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


os.makedirs(OUT, exist_ok=True)
tensors = {}
for name in params:
    tensors["initial/" + name] = initial[name]
    tensors["grad/" + name] = first_grads[name]
    tensors["final/" + name] = params[name]
tensors["initial/router_bias"] = initial_bias
tensors["final/router_bias"] = bias
write_safetensors(os.path.join(OUT, "model.safetensors"), tensors)
with open(os.path.join(OUT, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
with open(os.path.join(OUT, "fixture.json"), "w") as f:
    json.dump({"torch_version": torch.__version__, "dtype": "float64", "mtp_heads": MTP_HEADS, "batch": BATCH, "sequence": SEQ,
               "training": train, "tokens": batches.tolist(), "steps": losses}, f, indent=1)
print("wrote", OUT)
