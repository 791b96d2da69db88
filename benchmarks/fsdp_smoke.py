"""FSDP2 smoke run of sharded DP-SGD: a few private steps of a sharded Llama under torchrun.

Launch with torchrun, one process per device (NCCL on CUDA, gloo on the CPU); world size 1 is
a valid sharded run (every shard is the whole parameter):

    torchrun --nproc_per_node 1 benchmarks/fsdp_smoke.py --device cuda --bf16
    torchrun --nproc_per_node 2 benchmarks/fsdp_smoke.py --device cpu --shape tiny

Each rank shards the model with ``make_private(..., shard=True)`` (each block and the root;
``--bf16``: gathered parameters in bf16), takes ``--steps`` private steps (Gaussian noise,
book-keeping clipping) and checks: every loss finite, the released gradients float32 shards, ε
after the run equal to ``lmodp.epsilon`` of the same run. Rank 0 prints the step time and, on
CUDA, the peak memory allocated.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from fsdp_throughput import SHAPES, build_model, make_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    parser.add_argument("--tuning", choices=("full", "lora"), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--bf16", action="store_true", help="gather the parameters in bf16 (MixedPrecisionPolicy)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    args = parser.parse_args()

    import torch
    import torch.distributed as dist

    import lmodp
    from lmodp.mechanisms import Gaussian
    from lmodp.train import make_private
    from lmodp.train.fsdp import Sharding

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(args.device if args.device != "cuda" else f"cuda:{local_rank}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        shape = SHAPES[args.shape]
        model = build_model(shape, args.seq, args.tuning).to(device)
        data = make_data(shape["vocab"], 64 * args.batch, args.seq)
        sharding = Sharding(param_dtype=torch.bfloat16 if args.bf16 else None)
        _, optimizer, loader = make_private(
            model, lambda params: torch.optim.AdamW(params, lr=1e-5), data, mechanism=Gaussian(1.0), max_grad_norm=1.0,
            batch_size=args.batch, steps=args.steps, delta=1e-6, loss="causal-lm", accountant="rdp", shard=sharding,
        )
        times, losses = [], []
        for batch in loader:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = optimizer.step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            losses.append(out.loss)
        grad_dtypes = {str(p.grad.dtype) for p in model.parameters() if p.grad is not None}
        expected = lmodp.epsilon(Gaussian(1.0), sample_rate=loader.sample_rate, steps=args.steps, delta=1e-6, accountant="rdp")
        checks = {
            "losses finite": all(loss is None or math.isfinite(loss) for loss in losses),
            "gradients float32": grad_dtypes == {"torch.float32"},
            "epsilon = lmodp.epsilon": math.isclose(optimizer.ledger.epsilon(), expected, rel_tol=1e-12),
        }
        if dist.get_rank() == 0:
            memory = f", peak allocated {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.type == "cuda" else ""
            print(f"{args.shape} {args.tuning} on {dist.get_world_size()} x {device.type}{' (bf16)' if args.bf16 else ''}: "
                  f"step times {', '.join(f'{t:.3f}' for t in times)} s{memory}; losses {losses}")
            print("checks:", ", ".join(f"{k}: {'ok' if v else 'FAILED'}" for k, v in checks.items()))
        if not all(checks.values()):
            raise SystemExit(1)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
