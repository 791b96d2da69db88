"""Step time and peak memory of DP-SGD (lmodp.train) against non-private training and Opacus.

Each (model shape, mode) runs in its own Python process, so that its peak memory is its own:
the process's peak resident set size on the CPU (``ru_maxrss``, model and libraries included),
``torch.cuda.max_memory_allocated`` on a GPU. Models have random weights (nothing downloaded):

* ``minilm``: BertForSequenceClassification in the shape of all-MiniLM-L6-v2 (hidden 384,
  6 layers, 12 heads, ffn 1536, vocabulary 30522, 22.7 M parameters);
* ``gpt2-small``: GPT2LMHeadModel in the shape of GPT-2 small (hidden 768, 12 layers, 12 heads,
  vocabulary 50257, embedding and LM head tied, 124 M parameters), causal-LM loss.

Modes, each on the same logical batch (B sequences of T tokens, a quarter of them padded):

* ``non-private``: forward, backward of the mean loss, SGD step;
* ``lmodp-bk`` / ``lmodp-bk-lmo``: ``dp_optimizer.step(batch)`` with book-keeping clipping
  (the default), Gaussian noise / LMO noise (the authors' task1 ε = 2 set); the accountant's
  charge is part of the step;
* ``lmodp-vmap``: the same with ``clipping="vmap"`` (micro-batches of 16);
* ``opacus-ghost``: Opacus ``grad_sample_mode="ghost"`` (fast gradient clipping, two backward
  passes), Gaussian noise, when Opacus is installed and supports the model.

It prints the median step time over ``--repeats`` steps (after ``--warmup``), the peak memory,
and both as ratios to non-private training measured in the same run; then the time to add
Gaussian, Laplace and LMO noise to ``--noise-coordinates`` coordinates in place (what a step
does), against ``torch.randn`` of the same size on the same device.

    python benchmarks/train_throughput.py                          # both shapes, every mode, CPU
    python benchmarks/train_throughput.py --shapes minilm --batch 32 --seq 64 --threads 2
    python benchmarks/train_throughput.py --device cuda --batch 32 --seq 128 --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

SHAPES = {
    "minilm": dict(kind="bert", hidden=384, layers=6, heads=12, ffn=1536, vocab=30522),
    "gpt2-small": dict(kind="gpt2", hidden=768, layers=12, heads=12, ffn=3072, vocab=50257),
}
MODES = ("non-private", "lmodp-bk", "lmodp-bk-lmo", "lmodp-vmap", "opacus-ghost")
CLIP = 1.0


def build(shape: dict, seq: int) -> tuple[Any, str]:
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

    if shape["kind"] == "bert":
        config = BertConfig(
            vocab_size=shape["vocab"], hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
            num_attention_heads=shape["heads"], intermediate_size=shape["ffn"], max_position_embeddings=512,
            num_labels=2, attn_implementation="sdpa",
        )
        return BertForSequenceClassification(config), "classification"
    config = GPT2Config(
        vocab_size=shape["vocab"], n_embd=shape["hidden"], n_layer=shape["layers"], n_head=shape["heads"],
        n_inner=shape["ffn"], n_positions=max(seq, 128), bos_token_id=0, eos_token_id=0, attn_implementation="sdpa",
    )
    return GPT2LMHeadModel(config), "causal-lm"


def make_data(shape: dict, task: str, n: int, seq: int, device: Any) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, shape["vocab"], (n, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[: n // 4, seq * 3 // 4 :] = 0
    data = {"input_ids": ids, "attention_mask": mask}
    if task == "classification":
        # BERT's defaults are a stride-0 view and a (1, T) buffer, which Opacus's per-example hooks cannot read
        data["token_type_ids"] = torch.zeros_like(ids)
        data["position_ids"] = torch.arange(seq).repeat(n, 1)
        data["labels"] = torch.randint(0, 2, (n,), generator=g)
    return {k: v.to(device) for k, v in data.items()}


def stepper(mode: str, model: Any, task: str, data: dict[str, Any], batch: dict[str, Any]) -> Callable[[], None]:
    """The function that performs one training step of ``mode`` on ``batch``."""
    import torch

    from lmodp.train.losses import loss_for_task
    from lmodp.train.batches import model_inputs

    loss_fn = loss_for_task(task)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    n = int(batch["input_ids"].shape[0])
    if mode == "non-private":

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(**model_inputs(batch)), batch).mean().backward()
            optimizer.step()

        return step
    if mode.startswith("lmodp"):
        from lmodp.mechanisms import Gaussian
        from lmodp.paper import paper_mechanism
        from lmodp.train import make_private

        mechanism = paper_mechanism(2, "task1", exponential="rate") if mode.endswith("lmo") else Gaussian(1.0)
        _, dp_optimizer, _ = make_private(
            model, optimizer, data, mechanism=mechanism, max_grad_norm=CLIP, batch_size=n, delta=1e-5,
            clipping="vmap" if mode == "lmodp-vmap" else "bk", loss=task, steps=1000,
        )
        return lambda: dp_optimizer.step(batch)
    return opacus_ghost_stepper(model, task, optimizer, batch)


def opacus_ghost_stepper(model: Any, task: str, optimizer: Any, batch: dict[str, Any]) -> Callable[[], None]:
    import torch
    from opacus import PrivacyEngine

    n = int(batch["input_ids"].shape[0])
    dataset = torch.utils.data.TensorDataset(batch["input_ids"].cpu())
    loader = torch.utils.data.DataLoader(dataset, batch_size=n)
    criterion = torch.nn.CrossEntropyLoss()
    module, dp_optimizer, dp_criterion, _ = PrivacyEngine().make_private(
        module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=1.0, max_grad_norm=CLIP,
        criterion=criterion, grad_sample_mode="ghost",
    )
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    def step() -> None:
        dp_optimizer.zero_grad(set_to_none=True)
        logits = module(**inputs).logits
        if task == "classification":
            loss = dp_criterion(logits, batch["labels"])
        else:
            targets = batch["input_ids"][:, 1:].masked_fill(batch["attention_mask"][:, 1:] == 0, -100)
            shifted = logits[:, :-1]
            loss = dp_criterion(shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), shape=shifted.shape)
        loss.backward()
        dp_optimizer.step()

    return step


def child(config: dict[str, Any]) -> dict[str, Any]:
    """Run one (shape, mode) and return its figures (called in a fresh process)."""
    import torch

    torch.set_num_threads(config["threads"])
    device = torch.device(config["device"])
    torch.manual_seed(0)
    shape = SHAPES[config["shape"]]
    with device:
        model, task = build(shape, config["seq"])
    model.train()
    data = make_data(shape, task, 8 * config["batch"], config["seq"], device)
    batch = {k: v[: config["batch"]] for k, v in data.items()}
    try:
        step = stepper(config["mode"], model, task, data, batch)
        for _ in range(config["warmup"]):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(config["repeats"]):
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    except Exception as err:  # noqa: BLE001 - a library that cannot run this model is a result to report
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"median_s": statistics.median(times), "times_s": times, "peak_bytes": peak, "params": params}


def noise_timing(device_name: str, threads: int, coordinates: int, repeats: int) -> dict[str, float]:
    """Median seconds to add each mechanism's noise in place to ``coordinates`` float32 values."""
    import torch

    from lmodp.mechanisms import Gaussian, Laplace
    from lmodp.paper import paper_mechanism
    from lmodp.train import torch_sampler

    torch.set_num_threads(threads)
    device = torch.device(device_name)
    generator = torch.Generator(device=device).manual_seed(0)
    out = torch.zeros(coordinates, device=device)
    cases: dict[str, Callable[[], Any]] = {"torch.randn": lambda: torch.randn(coordinates, generator=generator, device=device)}
    for label, mechanism in (
        ("Gaussian", Gaussian(1.0)),
        ("Laplace", Laplace(1.0)),
        ("LMO task1 eps=0.3", paper_mechanism(0.3, "task1", exponential="rate")),
        ("LMO task1 eps=2", paper_mechanism(2, "task1", exponential="rate")),
    ):
        sampler = torch_sampler(mechanism)
        cases[label] = lambda s=sampler: s.add_scaled_(out, 1.0, generator=generator)
    results = {}
    for label, fn in cases.items():
        fn()
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        results[label] = statistics.median(times)
    return results


def run_in_process(config: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(config)], capture_output=True, text=True, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--noise-coordinates", type=int, default=22_700_000, help="0 skips the noise timing")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    memory = "max_memory_allocated" if args.device.startswith("cuda") else "peak RSS of the process"
    print(f"device {args.device}, {args.threads} threads, batch {args.batch} x {args.seq} tokens, "
          f"median of {args.repeats} steps after {args.warmup}; memory: {memory}")
    results: dict[str, dict[str, Any]] = {}
    for shape in args.shapes:
        results[shape] = {}
        print(f"\n{shape}")
        print(f"{'mode':<14} {'s/step':>8} {'x non-private':>14} {'peak GB':>8} {'x non-private':>14}")
        for mode in args.modes:
            config = dict(shape=shape, mode=mode, batch=args.batch, seq=args.seq, repeats=args.repeats,
                          warmup=args.warmup, threads=args.threads, device=args.device)
            out = run_in_process(config)
            results[shape][mode] = out
            if "error" in out:
                print(f"{mode:<14} not run: {out['error']}")
                continue
            base = results[shape].get("non-private", {})
            time_ratio = out["median_s"] / base["median_s"] if "median_s" in base else float("nan")
            mem_ratio = out["peak_bytes"] / base["peak_bytes"] if "peak_bytes" in base else float("nan")
            print(f"{mode:<14} {out['median_s']:>8.3f} {time_ratio:>14.2f} {out['peak_bytes'] / 1e9:>8.2f} {mem_ratio:>14.2f}")
    noise: dict[str, float] = {}
    if args.noise_coordinates:
        noise = noise_timing(args.device, args.threads, args.noise_coordinates, args.repeats)
        print(f"\nnoise added in place to {args.noise_coordinates:.3g} float32 coordinates on {args.device}")
        for label, seconds in noise.items():
            print(f"{label:<20} {seconds:>8.3f} s {seconds / noise['torch.randn']:>6.2f} x torch.randn")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "results": results, "noise_s": noise}, f, indent=2)


if __name__ == "__main__":
    main()
