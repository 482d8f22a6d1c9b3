#!/usr/bin/env bash
# MimoSharp vs llama.cpp on the same MiMo-shaped model, same machine, same threads.
#   llama.cpp: a random F32 GGUF of the `small` preset's shape, quantized to Q8_0, llama-bench.
#   MimoSharp: `mimo create-random --preset small` (FP8 + block scales, as the real checkpoint), mimo bench;
#              and the same model through `mimo quantize --type q8_0`, format for format against llama.cpp's Q8_0.
# Prints both and their ratios. Long (llama.cpp builds in ~20 min on 2 cores): not a test.
# Usage: bash benchmarks/side-by-side.sh LLAMA_GIT_DIR [THREADS=2] [COMMIT]
#   LLAMA_GIT_DIR: a git directory of llama.cpp's public repository (any clone or mirror).
set -euo pipefail
GIT_DIR="${1:?usage: side-by-side.sh LLAMA_GIT_DIR [THREADS] [COMMIT]}"
THREADS="${2:-2}"
COMMIT="${3:-0a50d9909a3478e82679f505bf8595d1eee4b0a8}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
WORK=/tmp/mimosharp-side-by-side
mkdir -p "$WORK"

bash "$HERE/peer/build_llama.sh" "$GIT_DIR" "$COMMIT"

dotnet build -c Release "$REPO/src/MimoSharp.Cli" > /dev/null
MIMO="$REPO/src/MimoSharp.Cli/bin/Release/net10.0/mimo"
[ -f "$WORK/small/config.json" ] && [ -f "$WORK/small/model.safetensors" ] || "$MIMO" create-random --preset small --output "$WORK/small"
[ -f "$WORK/small-q8_0/model.safetensors" ] || "$MIMO" quantize --model "$WORK/small" --output "$WORK/small-q8_0" --type q8_0

if [ ! -f "$WORK/mimo2-q8_0.gguf" ]; then
  PYTHONPATH=/tmp/llama.cpp/gguf-py /usr/bin/python3 "$HERE/peer/config_to_gguf.py" "$WORK/small/config.json" "$WORK/mimo2-f32.gguf"
  /tmp/llama.cpp/build/bin/llama-quantize "$WORK/mimo2-f32.gguf" "$WORK/mimo2-q8_0.gguf" Q8_0 > "$WORK/quantize.log" 2>&1
  rm -f "$WORK/mimo2-f32.gguf"
fi
cat "$WORK/mimo2-q8_0.gguf" > /dev/null   # page it in, as mimo prefaults its weights

/tmp/llama.cpp/build/bin/llama-bench -m "$WORK/mimo2-q8_0.gguf" -t "$THREADS" -p 512 -n 128 -r 3 -o json > "$WORK/llama.json"
"$MIMO" bench --model "$WORK/small" --threads "$THREADS" --prompt-tokens 512 --gen-tokens 128 --draft-tokens 0 --repetitions 3 --json > "$WORK/mimo.json"
"$MIMO" bench --model "$WORK/small-q8_0" --threads "$THREADS" --prompt-tokens 512 --gen-tokens 128 --draft-tokens 0 --repetitions 3 --json > "$WORK/mimo-q8_0.json"

/usr/bin/python3 - "$WORK/llama.json" "$WORK/mimo.json" "$WORK/mimo-q8_0.json" <<'PY'
import json, sys
llama = json.load(open(sys.argv[1]))
fp8 = json.load(open(sys.argv[2]))
q8 = json.load(open(sys.argv[3]))
pp = next(r["avg_ts"] for r in llama if r["n_prompt"] > 0)
tg = next(r["avg_ts"] for r in llama if r["n_gen"] > 0)
print(f"{'':26}{'llama.cpp Q8_0':>16}{'MimoSharp FP8':>16}{'ratio':>8}{'MimoSharp Q8_0':>16}{'ratio':>8}")
print(f"{'prefill 512 (tok/s)':26}{pp:16.1f}{fp8['prefill_tokens_per_s']:16.1f}{fp8['prefill_tokens_per_s'] / pp:8.2f}"
      f"{q8['prefill_tokens_per_s']:16.1f}{q8['prefill_tokens_per_s'] / pp:8.2f}")
print(f"{'decode 128 (tok/s)':26}{tg:16.1f}{fp8['decode_tokens_per_s']:16.1f}{fp8['decode_tokens_per_s'] / tg:8.2f}"
      f"{q8['decode_tokens_per_s']:16.1f}{q8['decode_tokens_per_s'] / tg:8.2f}")
bw = fp8['machine_read_bandwidth_bytes_per_s']
for name, m in (("FP8", fp8), ("Q8_0", q8)):
    print(f"MimoSharp {name}: {m['weight_bytes_per_token'] / 1e6:.0f} MB of weights per token, "
          f"{m['decode_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s ({m['decode_bandwidth_bytes_per_s'] / bw:.0%} of the machine's {bw / 1e9:.1f} GB/s), "
          f"peak resident {m['peak_resident_bytes'] / 2**30:.2f} GiB (checkpoint {m['checkpoint_bytes'] / 2**30:.2f} GiB)")
PY
