#!/usr/bin/env bash
# Issue 32's GPU check, run on a lent GPU machine through the device tool (no registry, no hub there):
#   run(command="bash benchmarks/gpu_precision.sh", carry=[".devcarry"])
# .devcarry holds what the machine lacks: the sentence-transformers wheel this package needs, SmolLM2's config and
# tokenizer (smollm2-shape/), and the sampled texts (texts.json, from precision.py --write-texts). SmolLM2's real
# weights (98 MB) exceed what a call can carry, so the models here have random weights of the real shapes: the speed
# is the real shapes', the cosines describe the mechanism. Results go to $OUT.
set -uo pipefail
CARRY=${CARRY:-.devcarry}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$CARRY"/*.whl
export PYTHONPATH="/tmp/site:$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 - "$CARRY/smollm2-shape" /tmp/smollm2-random <<'PY'
import sys, torch
from transformers import AutoConfig, AutoTokenizer, LlamaModel
source, target = sys.argv[1:]
config = AutoConfig.from_pretrained(source)
torch.manual_seed(0)
LlamaModel(config).save_pretrained(target, safe_serialization=True)
AutoTokenizer.from_pretrained(source).save_pretrained(target)
PY
timeout 300 python3 benchmarks/precision.py --device cuda --threads 8 --texts "$CARRY/texts.json" \
  --random-weights /tmp/smollm2-random --presets metaeol-smollm2-135m,metaeol-rag-smollm2-135m --rounds 2 --options \
  --out "$OUT/precision_gpu" 2>&1 | grep -v "Loading weights" | tail -40
for dtype in bfloat16 float32; do
  timeout 200 python3 benchmarks/large_model_smoke.py --device cuda --dtype "$dtype" --threads 8 --sentences 48 \
    --tokenizer "$CARRY/smollm2-shape" --folder /tmp/llama2-7b-shape --out "$OUT/large_model_smoke_gpu_$dtype" 2>&1 \
    | grep -v "Loading weights" | tail -8
done
