#!/usr/bin/env bash
# The default model's numbers (models/default/README.md quotes them):
# 1. held-out bits per byte, against xz -9 on the same text: prose compressed per 4 KB chunk, code per file;
# 2. MTP, greedy, 3 heads, on held-out prompts: mean acceptance length on prose and on code, and decode
#    tok/s with 3 draft tokens against none (benchmarks/MimoSharp.Benchmarks mtp);
# 3. what a speculative step costs against a plain one (step-cost).
#   bash benchmarks/default-model/evaluate.sh DATA_DIR [MODEL_DIR=models/default] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:?usage: evaluate.sh DATA_DIR [MODEL_DIR] [THREADS]}
model=${2:-models/default}
threads=${3:-2}
dotnet build src/MimoSharp.Cli -c Release -v q
dotnet build benchmarks/MimoSharp.Benchmarks -c Release -v q
mimo() { dotnet src/MimoSharp.Cli/bin/Release/net10.0/mimo.dll "$@"; }
bench() { dotnet benchmarks/MimoSharp.Benchmarks/bin/Release/net10.0/MimoSharp.Benchmarks.dll "$@"; }

held=$data/heldout
python3 - "$held" <<'PY'
import json, lzma, sys
held = sys.argv[1]
index = json.load(open(f"{held}/index.json"))
def xz(b, preset): return len(lzma.compress(b, preset=preset, format=lzma.FORMAT_XZ))
prose = open(f"{held}/prose.txt", "rb").read()
code = open(f"{held}/code.txt", "rb").read()
files = [d for d in index if d["file"] == "code.txt"]
for name, preset in (("xz -9", 9), ("xz -9e", 9 | lzma.PRESET_EXTREME)):
    chunks = sum(xz(prose[i:i + 4096], preset) for i in range(0, len(prose), 4096))
    total = sum(xz(code[d["byte_offset"]:d["byte_offset"] + d["bytes"]], preset) for d in files)
    print(f"{name}: prose per 4 KB chunk {8 * chunks / len(prose):.3f} bits/byte ({len(prose)} bytes); code per file {8 * total / len(code):.3f} bits/byte ({len(files)} files, {len(code)} bytes)")
PY
for kind in prose code; do
  for context in 256 1024; do
    echo "model, $kind, context $context: $(mimo eval --model "$model" --file "$held/$kind.txt" --context $context --threads "$threads" --json)"
  done
done
bench mtp "$model" "$data" 16 64 96 2 "$threads"
bench step-cost "$model" 256 300 "$threads"
