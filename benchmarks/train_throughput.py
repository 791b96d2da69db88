"""Step time and peak memory of DP-SGD (lmodp.train) against non-private training.

Models (random weights, nothing downloaded): RoBERTa-base- and RoBERTa-large-shaped sequence
classifiers and a GPT-2-small-shaped causal LM, at sequence length 128 ("full" shapes, for a
GPU) or scaled-down shapes ("tiny", the default without CUDA). For each model it times

* non-private: one forward/backward of the mean loss on a batch of B examples + AdamW step;
* DP: per-example gradients (vmap, micro-batches of m), flat L2 clipping, LMO noise on the
  device, division by B, AdamW step (the accountant is excluded: its per-step curve is cached
  after the first step and costs microseconds afterwards);

and prints median step times, peak memory (CUDA: ``max_memory_allocated``; CPU: the peak rise of
the process RSS during the step) and the DP/non-DP ratios. Finally it times LMO noise sampling
against ``torch.randn`` of the same size on the same device.

    python benchmarks/train_throughput.py                 # tiny shapes on CPU, full on CUDA
    python benchmarks/train_throughput.py --shapes full --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, RobertaConfig, RobertaForSequenceClassification

from lmodp.paper_params import paper_mechanism
from lmodp.train import make_private, torch_sampler
from lmodp.train.losses import loss_for_task
from lmodp.train.per_sample import model_inputs

FULL = {
    "roberta-base": dict(kind="roberta", hidden=768, layers=12, heads=12, ffn=3072, vocab=50265, seq=128, batch=32, micro=16),
    "roberta-large": dict(kind="roberta", hidden=1024, layers=24, heads=16, ffn=4096, vocab=50265, seq=128, batch=32, micro=8),
    "gpt2-small": dict(kind="gpt2", hidden=768, layers=12, heads=12, ffn=3072, vocab=50257, seq=128, batch=32, micro=16),
}
TINY = {
    "roberta-base": dict(kind="roberta", hidden=64, layers=2, heads=4, ffn=128, vocab=1000, seq=32, batch=16, micro=8),
    "roberta-large": dict(kind="roberta", hidden=96, layers=4, heads=4, ffn=192, vocab=1000, seq=32, batch=16, micro=8),
    "gpt2-small": dict(kind="gpt2", hidden=64, layers=2, heads=4, ffn=128, vocab=1000, seq=32, batch=16, micro=8),
}


def build(shape: dict, device: torch.device) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    with device:  # initialise on the device: much faster than on the CPU for the full shapes
        return _build(shape)


def _build(shape: dict) -> tuple[torch.nn.Module, str]:
    if shape["kind"] == "roberta":
        config = RobertaConfig(
            vocab_size=shape["vocab"], hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
            num_attention_heads=shape["heads"], intermediate_size=shape["ffn"],
            max_position_embeddings=shape["seq"] + 2, num_labels=2,
        )
        return RobertaForSequenceClassification(config), "classification"
    config = GPT2Config(
        vocab_size=shape["vocab"], n_embd=shape["hidden"], n_layer=shape["layers"], n_head=shape["heads"],
        n_inner=shape["ffn"], n_positions=shape["seq"], bos_token_id=0, eos_token_id=0,
    )
    return GPT2LMHeadModel(config), "causal-lm"


def make_batch(shape: dict, task: str, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, shape["vocab"], (shape["batch"], shape["seq"]), generator=g)
    mask = torch.ones_like(ids)
    mask[: shape["batch"] // 2, shape["seq"] * 3 // 4 :] = 0  # half the batch padded
    batch = {"input_ids": ids, "attention_mask": mask}
    if task == "classification":
        batch["labels"] = torch.randint(0, 2, (shape["batch"],), generator=g)
    return {k: v.to(device) for k, v in batch.items()}


class PeakMemory:
    """Peak memory during a block: CUDA allocator peak, or the peak rise of the process RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._rss())
            time.sleep(0.002)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._start = self._peak = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self._peak, self._rss()) - self._start


def median_time(step, device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``step`` (synchronising CUDA around each)."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed(step, device: torch.device, repeats: int) -> tuple[float, float]:
    """(median seconds per step after one warm-up step, peak memory in GiB including the warm-up)."""
    with PeakMemory(device) as memory:
        step()
        seconds = median_time(step, device, repeats)
    return seconds, memory.peak_bytes / 2**30


def bench_model(name: str, shape: dict, device: torch.device, repeats: int) -> dict:
    mechanism = paper_mechanism(2, "task1", exponential="rate")
    model, task = build(shape, device)
    batch = make_batch(shape, task, device)
    loss_fn = loss_for_task(task)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def plain_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(**model_inputs(batch)), batch).mean().backward()
        optimizer.step()

    plain_time, plain_mem = timed(plain_step, device, repeats)
    n_params = sum(p.numel() for p in model.parameters())
    del model, optimizer, plain_step  # free the non-private run before measuring the DP one
    if device.type == "cuda":
        torch.cuda.empty_cache()

    dp_model = build(shape, device)[0]
    dp_optimizer_inner = torch.optim.AdamW(dp_model.parameters(), lr=1e-5)
    _, dp_optimizer, _ = make_private(
        dp_model, dp_optimizer_inner, {k: v.cpu() for k, v in batch.items()}, mechanism=mechanism,
        max_grad_norm=1.0, sample_rate=1.0, delta=1e-5, micro_batch_size=shape["micro"], loss=task, steps=1, seed=0,
    )
    params = dp_optimizer.per_sample.trainable_parameters()

    def dp_step() -> None:
        dp_optimizer.zero_grad()
        noisy, _, _ = dp_optimizer.private_gradients(batch)
        for n, p in params.items():
            p.grad = noisy[n].to(p.dtype)
        dp_optimizer.optimizer.step()

    dp_time, dp_mem = timed(dp_step, device, repeats)
    del dp_model, dp_optimizer, dp_optimizer_inner, params, dp_step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "model": name, "params_M": n_params / 1e6, "batch": shape["batch"], "micro_batch": shape["micro"],
        "seq_len": shape["seq"], "plain_s": plain_time, "dp_s": dp_time, "time_ratio": dp_time / plain_time,
        "plain_peak_GiB": plain_mem, "dp_peak_GiB": dp_mem,
        "memory_ratio": dp_mem / plain_mem if plain_mem > 0 else float("nan"),
    }


def bench_noise(device: torch.device, numel: int, repeats: int) -> list[dict]:
    generator = torch.Generator(device=device).manual_seed(0)
    rows = []

    def run(draw) -> float:
        draw()
        return median_time(draw, device, repeats)

    randn = run(lambda: torch.randn(numel, generator=generator, device=device))
    for label, eps in (("LMO task1 eps=0.3", 0.3), ("LMO task1 eps=2", 2.0)):
        sampler = torch_sampler(paper_mechanism(eps, "task1", exponential="rate"))
        t = run(lambda: sampler.sample((numel,), generator=generator))
        rows.append({"sampler": label, "numel": numel, "seconds": t, "randn_seconds": randn, "ratio_to_randn": t / randn})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--shapes", default="auto", choices=("auto", "tiny", "full"))
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per measurement")
    parser.add_argument("--models", nargs="*", default=list(FULL), choices=list(FULL))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    full = args.shapes == "full" or (args.shapes == "auto" and device.type == "cuda")
    shapes = FULL if full else TINY
    repeats = args.repeats or (5 if device.type == "cuda" else 3)
    print(f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'}), "
          f"shapes={'full' if full else 'tiny'}, torch {torch.__version__}")
    results = {"device": str(device), "shapes": "full" if full else "tiny", "models": [], "noise": []}
    header = f"{'model':14s} {'params':>8s} {'B/m':>6s} {'plain s':>9s} {'DP s':>9s} {'DP/plain':>8s} {'plain GiB':>10s} {'DP GiB':>8s} {'mem ratio':>9s}"
    print(header)
    for name in args.models:
        row = bench_model(name, shapes[name], device, repeats)
        results["models"].append(row)
        print(f"{name:14s} {row['params_M']:7.1f}M {row['batch']:>3d}/{row['micro_batch']:<2d} {row['plain_s']:9.4f} {row['dp_s']:9.4f} "
              f"{row['time_ratio']:8.2f} {row['plain_peak_GiB']:10.3f} {row['dp_peak_GiB']:8.3f} {row['memory_ratio']:9.2f}")
    numel = 100_000_000 if device.type == "cuda" else 10_000_000
    for row in bench_noise(device, numel, repeats):
        results["noise"].append(row)
        print(f"noise {row['sampler']:18s} {row['numel']:.0e} coords: {row['seconds'] * 1e3:8.2f} ms, "
              f"randn {row['randn_seconds'] * 1e3:8.2f} ms, ratio {row['ratio_to_randn']:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
