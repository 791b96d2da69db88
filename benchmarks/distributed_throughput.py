"""Examples per second of data-parallel DP-SGD (lmodp.train.distributed) with 1 and K processes.

The model is a randomly initialised BertForSequenceClassification (nothing downloaded) of the
``--shape`` given (default ``bert-mini``: hidden 256, 4 layers, 4 heads, ffn 1024, vocabulary
30522, 11.2 M parameters); the data are ``--examples`` random sequences of ``--seq`` tokens;
the logical batch is a Poisson sample of expected size ``--batch``; each process calls
``make_private`` and ``dp_optimizer.step(batch)`` exactly as a one-process script does
(book-keeping clipping, Gaussian or LMO noise, the RDP ledger). The throughput is the number of
examples in the timed logical batches divided by the wall time of those steps (after
``--warmup`` steps, with a barrier before and after), and the scaling efficiency is
throughput(K) / (K · throughput(1)), measured in the same run. On a CPU shared with other jobs
the wall time says more about the machine's load than about the code, so the CPU time of the
timed steps, summed over the processes, is reported too: the work efficiency CPU s/example(1) /
CPU s/example(K) is the share of the K processes' work that a single process would also have
done (collectives, the replicated sampling and accounting are the rest). Rank 0 also reports
the time it takes to draw one step's noise (the one part of a step no other rank shares).

CPU (default): spawns a gloo group of each ``--world-sizes`` (1 and 2), ``--threads`` threads
per process, one after the other:

    python benchmarks/distributed_throughput.py
    python benchmarks/distributed_throughput.py --mechanisms gaussian --world-sizes 1 2 --steps 8

GPU: one process per device with NCCL, launched by torchrun; run it with K = 1 and with K
devices to get the efficiency (rank 0 prints):

    torchrun --nproc_per_node 1 benchmarks/distributed_throughput.py --device cuda --batch 256
    torchrun --nproc_per_node K benchmarks/distributed_throughput.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import timedelta
from typing import Any

SHAPES = {
    "bert-tiny": dict(hidden=128, layers=2, heads=2, ffn=512, vocab=30522),
    "bert-mini": dict(hidden=256, layers=4, heads=4, ffn=1024, vocab=30522),
    "minilm": dict(hidden=384, layers=6, heads=12, ffn=1536, vocab=30522),
}
MECHANISMS = ("gaussian", "lmo")


def mechanism_named(name: str) -> Any:
    from lmodp.mechanisms import Gaussian
    from lmodp.paper import paper_mechanism

    return Gaussian(1.0) if name == "gaussian" else paper_mechanism(2, "task1", exponential="rate")


def build_model(shape: dict[str, int], seq: int) -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=shape["vocab"], hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"], intermediate_size=shape["ffn"], max_position_embeddings=max(seq, 128),
        num_labels=2, attn_implementation="sdpa",
    )
    return BertForSequenceClassification(config)


def make_data(vocab: int, n: int, seq: int) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (n, seq), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (n,), generator=g)}


def noise_seconds(optimizer: Any, device: Any, repeats: int = 3) -> float:
    """Median time to add the mechanism's noise to every trainable coordinate (what rank 0 does)."""
    import statistics

    import torch

    out = torch.zeros(sum(p.numel() for p in optimizer.clipping.trainable_parameters().values()), device=device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.sampler.add_scaled_(out, 1.0, generator=optimizer.noise_generator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(config: dict[str, Any]) -> dict[str, Any]:
    """One process's part of a run in the initialised process group; the figures on every rank."""
    import torch
    import torch.distributed as dist

    from lmodp.train import make_private

    device = torch.device(config["device"])
    shape = SHAPES[config["shape"]]
    model = build_model(shape, config["seq"]).to(device).train()
    data = make_data(shape["vocab"], config["examples"], config["seq"])
    _, optimizer, loader = make_private(
        model, torch.optim.SGD(model.parameters(), lr=1e-4), data, mechanism=mechanism_named(config["mechanism"]),
        max_grad_norm=1.0, batch_size=config["batch"], delta=1e-5, steps=config["warmup"] + config["steps"], sampling_seed=0,
    )
    batches = iter(loader)
    for _ in range(config["warmup"]):
        optimizer.step(next(batches))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        dist.barrier()

    sync()
    start, cpu_start = time.perf_counter(), time.process_time()
    examples = sum(optimizer.step(batch).batch_size for batch in batches)
    sync()
    seconds = time.perf_counter() - start
    cpu = torch.tensor([time.process_time() - cpu_start], dtype=torch.float64, device=device)
    dist.all_reduce(cpu)
    figures = {"examples": examples, "seconds": seconds, "examples_per_s": examples / seconds}
    figures["cpu_s_per_example"] = float(cpu) / examples
    figures["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if dist.get_rank() == 0:
        figures["noise_s_per_step"] = noise_seconds(optimizer, device)
    sync()
    return figures


def spawned_rank(rank: int, world_size: int, rendezvous: str, config: dict[str, Any], out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(config["threads"])
    dist.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size, timeout=timedelta(minutes=10)
    )
    try:
        figures = measure(config)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        with open(os.path.join(out_dir, "figures.json"), "w") as f:
            json.dump(figures, f)


def run_on_cpu(config: dict[str, Any], world_size: int) -> dict[str, Any]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as scratch:
        mp.spawn(
            spawned_rank, args=(world_size, os.path.join(scratch, "rendezvous"), config, scratch), nprocs=world_size
        )
        with open(os.path.join(scratch, "figures.json")) as f:
            return json.load(f)


def run_under_torchrun(config: dict[str, Any]) -> dict[str, Any] | None:
    """This process's rank of a torchrun launch (NCCL on CUDA); the figures on rank 0, else None."""
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if config["device"] == "cuda":
        torch.cuda.set_device(local_rank)
        config = {**config, "device": f"cuda:{local_rank}"}
    else:
        torch.set_num_threads(config["threads"])
    dist.init_process_group("nccl" if config["device"].startswith("cuda") else "gloo")
    try:
        figures = measure(config)
        return figures if dist.get_rank() == 0 else None
    finally:
        dist.destroy_process_group()


def report(rows: list[dict[str, Any]]) -> None:
    print(f"{'mechanism':<10} {'processes':>9} {'examples/s':>11} {'efficiency':>10} {'CPU s/example':>14} "
          f"{'work efficiency':>16} {'noise s/step (rank 0)':>22}")
    for row in rows:
        base = next((r for r in rows if r["mechanism"] == row["mechanism"] and r["world_size"] == 1), None)
        if base is None:  # a torchrun launch measures one world size: compare with the K = 1 launch
            efficiency = work = "-"
        else:
            efficiency = f"{row['examples_per_s'] / (row['world_size'] * base['examples_per_s']):.2f}"
            work = f"{base['cpu_s_per_example'] / row['cpu_s_per_example']:.2f}"
        print(f"{row['mechanism']:<10} {row['world_size']:>9} {row['examples_per_s']:>11.1f} {efficiency:>10} "
              f"{row['cpu_s_per_example']:>14.4f} {work:>16} {row['noise_s_per_step']:>22.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bert-mini")
    parser.add_argument("--mechanisms", nargs="+", choices=MECHANISMS, default=list(MECHANISMS))
    parser.add_argument("--world-sizes", nargs="+", type=int, default=[1, 2], help="CPU runs only")
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64, help="expected logical batch size q·N")
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    base = dict(shape=args.shape, examples=args.examples, batch=args.batch, seq=args.seq, steps=args.steps,
                warmup=args.warmup, threads=args.threads, device=args.device)
    launched = "WORLD_SIZE" in os.environ
    rows = []
    for mechanism in args.mechanisms:
        config = {**base, "mechanism": mechanism}
        if launched:
            figures = run_under_torchrun(config)
            if figures is None:
                continue
            rows.append({"mechanism": mechanism, "world_size": int(os.environ["WORLD_SIZE"]), **figures})
        else:
            rows.extend({"mechanism": mechanism, "world_size": k, **run_on_cpu(config, k)} for k in args.world_sizes)
    if not rows:
        return
    print(f"{args.shape} ({rows[0]['params'] / 1e6:.1f} M parameters), {args.device}, expected batch {args.batch} x "
          f"{args.seq} tokens, {args.steps} timed steps after {args.warmup}, {args.threads} thread(s) per process")
    report(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
