#!/usr/bin/env bash
# MimoSharp vs llama.cpp on the same MiMo-shaped model, same machine, same threads.
#   llama.cpp: a random F32 GGUF of the `small` preset's shape, quantized to Q8_0, llama-bench.
#   MimoSharp: `mimo create-random --preset small` (FP8 + block scales, as the real checkpoint), mimo bench.
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

if [ ! -f "$WORK/mimo2-q8_0.gguf" ]; then
  PYTHONPATH=/tmp/llama.cpp/gguf-py /usr/bin/python3 "$HERE/peer/config_to_gguf.py" "$WORK/small/config.json" "$WORK/mimo2-f32.gguf"
  /tmp/llama.cpp/build/bin/llama-quantize "$WORK/mimo2-f32.gguf" "$WORK/mimo2-q8_0.gguf" Q8_0 > "$WORK/quantize.log" 2>&1
  rm -f "$WORK/mimo2-f32.gguf"
fi
cat "$WORK/mimo2-q8_0.gguf" > /dev/null   # page it in, as mimo prefaults its weights

/tmp/llama.cpp/build/bin/llama-bench -m "$WORK/mimo2-q8_0.gguf" -t "$THREADS" -p 512 -n 128 -r 3 -o json > "$WORK/llama.json"
"$MIMO" bench --model "$WORK/small" --threads "$THREADS" --prompt-tokens 512 --gen-tokens 128 --draft-tokens 0 --repetitions 3 --json > "$WORK/mimo.json"

/usr/bin/python3 - "$WORK/llama.json" "$WORK/mimo.json" <<'PY'
import json, sys
llama = json.load(open(sys.argv[1]))
mimo = json.load(open(sys.argv[2]))
pp = next(r["avg_ts"] for r in llama if r["n_prompt"] > 0)
tg = next(r["avg_ts"] for r in llama if r["n_gen"] > 0)
print(f"{'':26}{'llama.cpp Q8_0':>16}{'MimoSharp FP8':>16}{'ratio':>8}")
print(f"{'prefill 512 (tok/s)':26}{pp:16.1f}{mimo['prefill_tokens_per_s']:16.1f}{mimo['prefill_tokens_per_s'] / pp:8.2f}")
print(f"{'decode 128 (tok/s)':26}{tg:16.1f}{mimo['decode_tokens_per_s']:16.1f}{mimo['decode_tokens_per_s'] / tg:8.2f}")
print(f"MimoSharp: {mimo['weight_bytes_per_token'] / 1e6:.0f} MB of weights per token, "
      f"{mimo['decode_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, peak resident {mimo['peak_resident_bytes'] / 2**30:.2f} GiB "
      f"(checkpoint {mimo['checkpoint_bytes'] / 2**30:.2f} GiB)")
PY
