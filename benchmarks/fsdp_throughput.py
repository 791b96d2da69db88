"""Step time and memory per rank of sharded DP-SGD (FSDP2 + book-keeping) against non-private FSDP2.

The model is a randomly initialised Llama of SmolLM2-135M's shape (``--shape smollm2-135m``:
hidden 576, 30 layers, 9 heads, 3 key/value heads, ffn 1536, vocabulary 49152, tied embeddings,
134.5 M parameters; nothing downloaded), fine-tuned in full or with LoRA (rank 8 on q_proj and
v_proj), on ``--examples`` random sequences of ``--seq`` tokens. Every mode runs in its own
spawned gloo group of ``--world-size`` processes (peak memory is per process), one after the
other, with ``--threads`` torch threads per process:

* ``fsdp`` (the baseline): ``fully_shard`` on each block and the root, AdamW, each rank a fixed
  micro-batch of ``--batch``/W sequences, the mean loss, FSDP's own reduce-scatter;
* ``fsdp-dp``: the same sharding by ``make_private(..., shard=True)``, Poisson batches of expected
  size ``--batch`` (each rank its part), per-example clipping by book-keeping, Gaussian noise
  (``--mechanism lmo`` for the LMO noise);
* ``one-process-dp``: ``make_private`` in one process (whole model), for the per-rank share of
  parameter, gradient and optimizer memory.

Reported per mode: wall seconds per step and CPU seconds per example (the processes' CPU time
summed, over the examples of the timed steps: Poisson batches vary), the peak resident set size
of the busiest rank during the timed steps (a 5 ms poller of /proc/self/statm), and the bytes of
this rank's parameters, gradients and optimizer state (DTensor shards counted locally). Ratios
are against ``fsdp`` of the same tuning, measured in the same run:

    python benchmarks/fsdp_throughput.py                      # full and LoRA, 2 processes
    python benchmarks/fsdp_throughput.py --tunings lora --steps 3 --seq 32
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from datetime import timedelta
from typing import Any

SHAPES = {
    "smollm2-135m": dict(hidden=576, layers=30, heads=9, kv_heads=3, ffn=1536, vocab=49152),
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=512),
}
MODES = ("fsdp", "fsdp-dp", "one-process-dp")
TUNINGS = ("full", "lora")


def build_model(shape: dict[str, int], seq: int, tuning: str) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=shape["vocab"], hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"], num_key_value_heads=shape["kv_heads"], intermediate_size=shape["ffn"],
        max_position_embeddings=max(seq, 128), tie_word_embeddings=True, attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config)
    if tuning == "lora":
        import peft

        model = peft.get_peft_model(model, peft.LoraConfig(task_type="CAUSAL_LM", r=8, target_modules=["q_proj", "v_proj"]))
    return model.train()


def make_data(vocab: int, n: int, seq: int) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (n, seq), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class PeakRSS:
    """The largest resident set size seen by a background poller (every 5 ms) while active."""

    def __init__(self) -> None:
        self.peak = 0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __enter__(self) -> "PeakRSS":
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _local_bytes(tensors: Any) -> int:
    total = 0
    for t in tensors:
        local = t.to_local() if hasattr(t, "to_local") else t
        total += local.numel() * local.element_size()
    return total


def state_bytes(model: Any, optimizer: Any) -> dict[str, int]:
    """This rank's bytes of parameters, gradients and optimizer state."""
    import torch

    original = getattr(optimizer, "original_optimizer", optimizer)
    states = [v for s in original.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return {
        "param_bytes": _local_bytes(model.parameters()),
        "grad_bytes": _local_bytes(p.grad for p in model.parameters() if p.grad is not None),
        "optimizer_bytes": _local_bytes(states),
    }


def measure(config: dict[str, Any]) -> dict[str, Any]:
    """One process's part of a mode's run; its figures."""
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    from lmodp.mechanisms import Gaussian
    from lmodp.paper import paper_mechanism
    from lmodp.train import make_private
    from lmodp.train.losses import causal_lm_loss

    shape = SHAPES[config["shape"]]
    model = build_model(shape, config["seq"], config["tuning"])
    data = make_data(shape["vocab"], config["examples"], config["seq"])
    steps = config["warmup"] + config["steps"]
    world = dist.get_world_size() if dist.is_initialized() else 1
    if config["mode"] == "fsdp":
        for layer in model.modules():
            if type(layer).__name__ == "LlamaDecoderLayer":
                fully_shard(layer)
        fully_shard(model)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        per_rank = config["batch"] // world
        rank = dist.get_rank()

        def batches():
            for step in range(steps):
                start = (step * config["batch"] + rank * per_rank) % (config["examples"] - per_rank)
                yield {k: v[start : start + per_rank] for k, v in data.items()}

        def step(batch: dict[str, Any]) -> int:
            optimizer.zero_grad(set_to_none=True)
            causal_lm_loss(model(**batch), batch).mean().backward()
            optimizer.step()
            return per_rank * world

        loader = batches()
    else:
        mechanism = Gaussian(1.0) if config["mechanism"] == "gaussian" else paper_mechanism(2, "task1", exponential="rate")
        _, optimizer, dp_loader = make_private(
            model, lambda params: torch.optim.AdamW(params, lr=1e-5), data, mechanism=mechanism, max_grad_norm=1.0,
            batch_size=config["batch"], delta=1e-5, steps=steps, loss="causal-lm", accountant="rdp",
            shard=config["mode"] == "fsdp-dp", distributed=None if config["mode"] == "fsdp-dp" else False,
        )
        loader = iter(dp_loader)

        def step(batch: dict[str, Any]) -> int:
            return optimizer.step(batch).batch_size

    def sync() -> None:
        if dist.is_initialized():
            dist.barrier()

    for _ in range(config["warmup"]):
        step(next(loader))
    sync()
    with PeakRSS() as rss:
        start, cpu_start = time.perf_counter(), time.process_time()
        examples = sum(step(batch) for batch in loader)
        sync()
        seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    figures = {"seconds_per_step": seconds / config["steps"], "cpu_seconds": cpu, "examples": examples,
               "peak_rss": rss.peak, **state_bytes(model, optimizer),
               "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if dist.is_initialized():
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, figures)
        figures = {
            **gathered[0], "cpu_seconds": sum(g["cpu_seconds"] for g in gathered),
            "peak_rss": max(g["peak_rss"] for g in gathered),
            **{k: max(g[k] for g in gathered) for k in ("param_bytes", "grad_bytes", "optimizer_bytes")},
        }
    figures["cpu_s_per_example"] = figures["cpu_seconds"] / max(figures["examples"], 1)
    return figures


def spawned_rank(rank: int, world_size: int, rendezvous: str, config: dict[str, Any], out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(config["threads"])
    if world_size > 1:
        dist.init_process_group(
            "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size, timeout=timedelta(minutes=30)
        )
    try:
        figures = measure(config)
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    if rank == 0:
        with open(os.path.join(out_dir, "figures.json"), "w") as f:
            json.dump(figures, f)


def run_mode(config: dict[str, Any], world_size: int) -> dict[str, Any]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as scratch:
        mp.spawn(spawned_rank, args=(world_size, os.path.join(scratch, "rendezvous"), config, scratch), nprocs=world_size)
        with open(os.path.join(scratch, "figures.json")) as f:
            return json.load(f)


def report(rows: list[dict[str, Any]]) -> None:
    mib = 2**20
    print(f"{'tuning':<6} {'mode':<15} {'procs':>5} {'s/step':>8} {'x':>5} {'CPU s/ex':>9} {'x':>5} "
          f"{'peak RSS MiB':>13} {'x':>5} {'param+grad+opt MiB':>19} {'x one-proc':>10}")
    for row in rows:
        base = next(r for r in rows if r["tuning"] == row["tuning"] and r["mode"] == "fsdp")
        single = next((r for r in rows if r["tuning"] == row["tuning"] and r["mode"] == "one-process-dp"), None)
        state = row["param_bytes"] + row["grad_bytes"] + row["optimizer_bytes"]
        share = "-" if single is None else f"{state / (single['param_bytes'] + single['grad_bytes'] + single['optimizer_bytes']):.2f}"
        print(f"{row['tuning']:<6} {row['mode']:<15} {row['world_size']:>5} {row['seconds_per_step']:>8.2f} "
              f"{row['seconds_per_step'] / base['seconds_per_step']:>5.2f} {row['cpu_s_per_example']:>9.3f} "
              f"{row['cpu_s_per_example'] / base['cpu_s_per_example']:>5.2f} {row['peak_rss'] / mib:>13.0f} "
              f"{row['peak_rss'] / base['peak_rss']:>5.2f} {state / mib:>19.1f} {share:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    parser.add_argument("--tunings", nargs="+", choices=TUNINGS, default=list(TUNINGS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--mechanism", choices=("gaussian", "lmo"), default="gaussian")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8, help="expected logical batch size q·N (fixed for fsdp)")
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    rows = []
    for tuning in args.tunings:
        for mode in args.modes:
            config = dict(shape=args.shape, tuning=tuning, mode=mode, mechanism=args.mechanism, examples=args.examples,
                          batch=args.batch, seq=args.seq, steps=args.steps, warmup=args.warmup, threads=args.threads)
            world = 1 if mode == "one-process-dp" else args.world_size
            rows.append({"tuning": tuning, "mode": mode, "world_size": world, **run_mode(config, world)})
            print(f"done: {tuning} {mode}", flush=True)
    print(f"{args.shape}, {args.world_size} gloo processes x {args.threads} thread(s), expected batch {args.batch} x "
          f"{args.seq} tokens, {args.steps} timed steps after {args.warmup}, {args.mechanism} noise")
    report(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
