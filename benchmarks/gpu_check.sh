#!/usr/bin/env bash
# One prepared GPU check of lmodp.train, for a machine with a CUDA device (budget: about 10 minutes).
#
#   bash benchmarks/gpu_check.sh            # writes into $OUT (the device tool's folder) or ./gpu-check/
#
# 1. the CUDA tests (pytest -m cuda): book-keeping and vmap per-example gradients on CUDA against
#    the vmap path and a one-example autograd loop, the law of noise drawn on the device (KS test),
#    a bf16-autocast finetune;
# 2. benchmarks/train_throughput.py on CUDA (MiniLM and GPT-2-small shapes, batch 32 x 128 tokens):
#    non-private, lmodp book-keeping (Gaussian and LMO noise), lmodp vmap and Opacus ghost, each in
#    its own process, step time and max_memory_allocated as ratios to non-private; noise sampling
#    against torch.randn;
# 3. an FSDP2 smoke run (benchmarks/fsdp_smoke.py, torchrun with one process, NCCL): a
#    SmolLM2-135M-shaped Llama sharded by make_private(shard=True), bf16 gathered parameters,
#    4 private steps; checks finite losses, float32 sharded gradients, epsilon = lmodp.epsilon.
# Needs a CUDA build of torch and transformers in the active Python; installs nothing (the project's
# .venv holds the CPU wheel torch==2.13.0+cpu: do not carry it to a GPU machine).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to torch: $(python -c 'import torch; print(torch.__version__)')" | tee "$out/error.txt"
    exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"

timeout 150 python -m pytest -q -m cuda -p no:cacheprovider \
    tests/test_train_per_sample.py tests/test_train_book_keeping.py tests/test_train_noise_and_clipping.py \
    tests/test_train_finetune.py 2>&1 | tee "$out/cuda_tests.txt"
tests_rc=${PIPESTATUS[0]}

timeout 330 python benchmarks/train_throughput.py --device cuda --batch 32 --seq 128 --repeats 10 \
    --noise-coordinates 100000000 --json "$out/train_throughput.json" 2>&1 | tee "$out/train_throughput.txt"
bench_rc=${PIPESTATUS[0]}

timeout 120 torchrun --nproc_per_node 1 benchmarks/fsdp_smoke.py --device cuda --bf16 2>&1 | tee "$out/fsdp_smoke.txt"
fsdp_rc=${PIPESTATUS[0]}

echo "cuda tests rc=$tests_rc, benchmark rc=$bench_rc, fsdp smoke rc=$fsdp_rc" | tee "$out/summary.txt"
exit $(( tests_rc != 0 || bench_rc != 0 || fsdp_rc != 0 ))
