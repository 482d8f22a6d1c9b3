#!/usr/bin/env bash
# MimoSharp vs llama.cpp on the same MiMo-shaped model, same machine, same threads.
#   llama.cpp: a random F32 GGUF of the `small` preset's shape, quantized to Q8_0 and Q4_0, llama-bench.
#   MimoSharp: `mimo create-random --preset small` (FP8 + block scales, as the real checkpoint), mimo bench;
#              and the same model through `mimo quantize --type q8_0 / q4_0`, format for format against llama.cpp's.
# Prints both and their ratios. Long (several minutes per round): not a test.
#
# This script never builds llama.cpp: give it the directory holding a llama-bench and a llama-quantize
# that you built by hand outside this repository (for an AVX2 comparison on an AVX-512 machine, a build
# with native CPU detection off and AVX2 on, as llama.cpp's own build documentation describes).
# Writing the GGUF needs that tree's gguf-py (GGUF_PY, default LLAMA_BIN_DIR/../../gguf-py, i.e. a build
# directory inside the source tree) and /usr/bin/python3 with numpy.
#
# Usage: [ROUNDS=2] [GGUF_PY=DIR] bash benchmarks/side-by-side.sh LLAMA_BIN_DIR [THREADS=2] [ISA=Auto]
#   ISA: MimoSharp's kernel path (`mimo bench --isa`: Auto, Vector512, Vector256, Vector128, Scalar). llama.cpp's
#        instruction set is fixed when it is built; hold both to the same one (Vector256 against -DGGML_NATIVE=OFF
#        -DGGML_AVX2=ON, which keeps AVX-512 off).
set -euo pipefail
BIN="${1:?usage: side-by-side.sh LLAMA_BIN_DIR [THREADS] [ISA]  (a directory with llama-bench and llama-quantize built by hand)}"
THREADS="${2:-2}"
ISA="${3:-Auto}"
ROUNDS="${ROUNDS:-2}"
BIN="$(cd "$BIN" && pwd)"
for tool in llama-bench llama-quantize; do
  [ -x "$BIN/$tool" ] || { echo "side-by-side.sh: $BIN/$tool is missing or not executable (build llama.cpp by hand; this script never builds it)" >&2; exit 2; }
done
GGUF_PY="${GGUF_PY:-$BIN/../../gguf-py}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
WORK=/tmp/mimosharp-side-by-side
mkdir -p "$WORK"
echo "llama.cpp: $BIN; MimoSharp kernels: $ISA; threads $THREADS; $ROUNDS rounds"
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(grep -o -w -m1 -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

dotnet build -c Release "$REPO/src/MimoSharp.Cli" > /dev/null
MIMO="$REPO/src/MimoSharp.Cli/bin/Release/net10.0/mimo"
[ -f "$WORK/small/config.json" ] && [ -f "$WORK/small/model.safetensors" ] || "$MIMO" create-random --preset small --output "$WORK/small"
for t in q8_0 q4_0; do
  [ -f "$WORK/small-$t/model.safetensors" ] || "$MIMO" quantize --model "$WORK/small" --output "$WORK/small-$t" --type "$t"
done

if [ ! -f "$WORK/mimo2-q8_0.gguf" ] || [ ! -f "$WORK/mimo2-q4_0.gguf" ]; then
  [ -d "$GGUF_PY" ] || { echo "side-by-side.sh: no gguf-py at $GGUF_PY (set GGUF_PY to llama.cpp's gguf-py directory)" >&2; exit 2; }
  /usr/bin/python3 -c 'import numpy' 2> /dev/null || { echo "side-by-side.sh: /usr/bin/python3 has no numpy, which writing the GGUF needs (Debian: apt-get install python3-numpy)" >&2; exit 2; }
  PYTHONPATH="$GGUF_PY" /usr/bin/python3 "$HERE/peer/config_to_gguf.py" "$WORK/small/config.json" "$WORK/mimo2-f32.gguf"
  for t in Q8_0 Q4_0; do
    "$BIN/llama-quantize" "$WORK/mimo2-f32.gguf" "$WORK/mimo2-${t,,}.gguf" "$t" > "$WORK/quantize-$t.log" 2>&1
  done
  rm -f "$WORK/mimo2-f32.gguf"
fi

# Q8_0 against our FP8 (the checkpoint's own format) and our Q8_0; Q4_0 against our Q4_0.
# This kind of host shares memory bandwidth with its neighbours (it swings 2x within minutes), so the
# runs alternate, ROUNDS times, and the table shows each one's mean over the rounds.
for t in q8_0 q4_0; do cat "$WORK/mimo2-$t.gguf" > /dev/null; done   # page them in, as mimo reads its weights into memory
for round in $(seq 1 "$ROUNDS"); do
  "$BIN/llama-bench" -m "$WORK/mimo2-q8_0.gguf" -t "$THREADS" -p 512 -n 128 -r 3 -o json > "$WORK/llama-q8_0.$round.json"
  "$MIMO" bench --model "$WORK/small" --threads "$THREADS" --prompt-tokens 512 --gen-tokens 128 --draft-tokens 0 --repetitions 3 --isa "$ISA" --json > "$WORK/mimo.$round.json"
  "$MIMO" bench --model "$WORK/small-q8_0" --threads "$THREADS" --prompt-tokens 512 --gen-tokens 128 --draft-tokens 0 --repetitions 3 --isa "$ISA" --json > "$WORK/mimo-q8_0.$round.json"
  "$BIN/llama-bench" -m "$WORK/mimo2-q4_0.gguf" -t "$THREADS" -p 512 -n 128 -r 3 -o json > "$WORK/llama-q4_0.$round.json"
  "$MIMO" bench --model "$WORK/small-q4_0" --threads "$THREADS" --prompt-tokens 512 --gen-tokens 128 --draft-tokens 0 --repetitions 3 --isa "$ISA" --json > "$WORK/mimo-q4_0.$round.json"
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$WORK" "$ROUNDS" <<'PY'
import json, sys, os
work, rounds = sys.argv[1], int(sys.argv[2])
def load(name, r): return json.load(open(os.path.join(work, f"{name}.{r}.json")))
def mean(values): return sum(values) / len(values)
def llama(name):
    runs = [load(name, r) for r in range(1, rounds + 1)]
    pp = mean([next(x["avg_ts"] for x in run if x["n_prompt"] > 0) for run in runs])
    tg = mean([next(x["avg_ts"] for x in run if x["n_gen"] > 0) for run in runs])
    return pp, tg
def ours(name):
    runs = [load(name, r) for r in range(1, rounds + 1)]
    return {k: mean([run[k] for run in runs]) for k in runs[0] if isinstance(runs[0][k], (int, float))}
rows = [("llama.cpp Q8_0", "MimoSharp FP8", llama("llama-q8_0"), ours("mimo")),
        ("llama.cpp Q8_0", "MimoSharp Q8_0", llama("llama-q8_0"), ours("mimo-q8_0")),
        ("llama.cpp Q4_0", "MimoSharp Q4_0", llama("llama-q4_0"), ours("mimo-q4_0"))]
print(f"mean of {rounds} alternating rounds")
print(f"{'':34}{'prefill 512 tok/s':>20}{'ratio':>7}{'decode 128 tok/s':>20}{'ratio':>7}")
for peer, name, (pp, tg), m in rows:
    print(f"{peer:34}{pp:20.1f}{'':7}{tg:20.1f}")
    print(f"{name:34}{m['prefill_tokens_per_s']:20.1f}{m['prefill_tokens_per_s'] / pp:7.2f}{m['decode_tokens_per_s']:20.1f}{m['decode_tokens_per_s'] / tg:7.2f}")
for name, file in (("FP8", "mimo"), ("Q8_0", "mimo-q8_0"), ("Q4_0", "mimo-q4_0")):
    m = ours(file)
    print(f"MimoSharp {name}: {m['weight_bytes_per_token'] / 1e6:.0f} MB of weights per token, "
          f"{m['decode_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s ({m['decode_bandwidth_bytes_per_s'] / m['machine_read_bandwidth_bytes_per_s']:.0%} of the machine's "
          f"{m['machine_read_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s), peak resident {m['peak_resident_bytes'] / 2**30:.2f} GiB "
          f"(checkpoint {m['checkpoint_bytes'] / 2**30:.2f} GiB)")
PY
