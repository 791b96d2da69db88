"""Per-GPU memory of sharded DP-SGD (FSDP2 + book-keeping) for Llama-2-7B and 13B: a memory model,
checked against measurements on the CPU at small shapes.

The model counts, per rank of W (one GPU each), for a Llama of hidden size h, L layers, ffn i,
key/value width k_v, vocabulary V, P parameters (P_t trainable) and a micro-batch of b sequences
of T tokens (n = b·T tokens):

* sharded state, float32: parameters 4P/W, gradients 4P_t/W, AdamW moments 8P_t/W;
* gathered parameters (``param_dtype``, bf16: 2 bytes): the block in use and the next one
  (FSDP2 prefetches it), plus the root group (embeddings, final norm, an untied head);
* activations that autograd saves (bf16), about n·L·(7h + 2k_v + 4i)·2 bytes (layer inputs,
  normalised inputs, q, k, v, attention output, gate, up and their product; flash attention
  saves no T×T scores), and the logits with the float32 loss: n·V·(2 + 4 + 4) bytes;
* book-keeping (what this implementation keeps until the backward pass ends), for every use of a
  trainable linear layer: its output gradient in float32 (4·d_out per token) and its input in
  float32 (4·d_in per token: a copy when activations are bf16); embeddings keep the token ids
  (8 bytes) and the output gradient; other trainable layers (RMSNorm) their per-example
  gradient (4·b·h); plus, transiently, one parameter's whole clipped sum and its reduce-scattered
  shard (8·max parameter size).

``--check`` measures, on the CPU in one process (float32, so inputs are shared with autograd
rather than copied), the bytes book-keeping actually keeps (distinct storages of its factor
tensors, at the end of the backward pass) at small Llama shapes against the same formula, and the
peak RSS growth of a DP step over a non-private one against the book-keeping term; the
parameter, gradient and optimizer shares per rank are measured by
``benchmarks/fsdp_throughput.py``.

    python benchmarks/fsdp_memory.py                 # the 7B and 13B table (8 x 80 GB)
    python benchmarks/fsdp_memory.py --check         # model against measurement, small shapes
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

GIB = 2**30


@dataclass(frozen=True)
class LlamaShape:
    hidden: int
    layers: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = False

    @property
    def kv(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    def linears(self) -> list[tuple[int, int]]:
        """(d_in, d_out) of one block's linear layers: q, k, v, o, gate, up, down."""
        h, i, kv = self.hidden, self.ffn, self.kv
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    @property
    def block_params(self) -> int:
        return sum(a * b for a, b in self.linears()) + 2 * self.hidden

    @property
    def root_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.block_params + self.root_params


SHAPES = {
    "llama-2-7b": LlamaShape(hidden=4096, layers=32, ffn=11008, heads=32, kv_heads=32, vocab=32000),
    "llama-2-13b": LlamaShape(hidden=5120, layers=40, ffn=13824, heads=40, kv_heads=40, vocab=32000),
}


def lora_params(shape: LlamaShape, rank: int) -> int:
    """LoRA of rank r on q_proj and v_proj: r·(h + h) + r·(h + k_v) per block."""
    h = shape.hidden
    return shape.layers * rank * ((h + h) + (h + shape.kv))


def book_keeping_bytes(shape: LlamaShape, *, tokens: int, examples: int, lora_rank: int | None, copies_inputs: bool) -> int:
    """What book-keeping keeps until the end of the backward pass (see the module docstring).
    Inputs read by several layers (q, k, v; gate, up) are shared unless ``copies_inputs``."""
    h = shape.hidden
    if lora_rank is not None:
        r = lora_rank
        per_block = [(h, r), (r, h), (h, r), (r, shape.kv)]  # lora_A, lora_B of q_proj and v_proj
        inputs = sum(d_in for d_in, _ in per_block) if copies_inputs else h + r + r  # q/v lora_A share x
        outputs = sum(d_out for _, d_out in per_block)
        return 4 * tokens * shape.layers * (inputs + outputs)
    linears = shape.linears()
    outputs = sum(d_out for _, d_out in linears)
    inputs = sum(d_in for d_in, _ in linears) if copies_inputs else 3 * h + shape.ffn
    per_token = shape.layers * (inputs + outputs) + h + h + shape.vocab  # embedding G, head input and G
    ids = 8 * tokens
    norms = 4 * examples * h * (2 * shape.layers + 1)
    return 4 * tokens * per_token + ids + norms


def memory_per_rank(shape: LlamaShape, *, world: int, batch: int, seq: int, lora_rank: int | None) -> dict[str, float]:
    """Bytes per rank, by term (see the module docstring)."""
    p = shape.params
    trainable = p if lora_rank is None else lora_params(shape, lora_rank)
    tokens = batch * seq
    biggest = shape.vocab * shape.hidden if lora_rank is None else shape.hidden * lora_rank
    return {
        "sharded parameters": 4 * (p + (0 if lora_rank is None else trainable)) / world,
        "sharded gradients": 4 * trainable / world,
        "AdamW state": 8 * trainable / world,
        "gathered parameters (bf16)": 2 * (2 * shape.block_params + shape.root_params),
        "activations (bf16) and logits": tokens * shape.layers * (7 * shape.hidden + 2 * shape.kv + 4 * shape.ffn) * 2
        + tokens * shape.vocab * 10,
        "book-keeping": book_keeping_bytes(shape, tokens=tokens, examples=batch, lora_rank=lora_rank, copies_inputs=True)
        + 8 * biggest,
    }


def table(args: argparse.Namespace) -> None:
    print(f"Per-GPU memory model, FSDP2 over W = {args.world} GPUs of {args.gpu_gib} GiB, micro-batch of b sequences x "
          f"{args.seq} tokens per GPU (GiB)")
    for name in args.shapes:
        shape = SHAPES[name]
        for tuning, rank in (("full", None), (f"LoRA r={args.lora_rank}", args.lora_rank)):
            for batch in args.batches:
                terms = memory_per_rank(shape, world=args.world, batch=batch, seq=args.seq, lora_rank=rank)
                total = sum(terms.values())
                verdict = "fits" if total <= 0.9 * args.gpu_gib * GIB else "does not fit"
                parts = ", ".join(f"{k} {v / GIB:.1f}" for k, v in terms.items())
                print(f"{name} ({shape.params / 1e9:.2f} B), {tuning}, b = {batch}: total {total / GIB:.1f} GiB, {verdict} "
                      f"(90% of {args.gpu_gib} GiB) — {parts}")


class _PeakRSS:
    def __init__(self) -> None:
        self.peak = 0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.002)

    def __enter__(self) -> "_PeakRSS":
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _kept_bytes(engine: Any) -> int:
    """Distinct storages of the factor tensors of every pending forward pass of ``engine``."""
    from lmodp.train.bk_gradients import OuterProductSum

    seen: dict[int, int] = {}
    for forward_pass in engine._pending:
        for call in forward_pass.calls:
            for factor in (call.factors or {}).values():
                tensors = (factor.rows, factor.cols) if isinstance(factor, OuterProductSum) else (factor.values,)
                for t in tensors:
                    storage = t.untyped_storage()
                    seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def check(args: argparse.Namespace) -> None:
    """Book-keeping's kept bytes and a DP step's peak RSS growth, measured against the model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmodp.train.book_keeping import BookKeepingClipping
    from lmodp.train.losses import causal_lm_loss

    torch.set_num_threads(1)
    print("Book-keeping kept bytes (float32, one process): measured against the model")
    print(f"{'shape':<32} {'tuning':<8} {'measured MiB':>13} {'model MiB':>10} {'ratio':>6} {'DP-step RSS growth MiB':>23}")
    for hidden, layers, ffn, vocab in ((64, 2, 160, 512), (256, 4, 688, 4096), (512, 4, 1376, 8000)):
        shape = LlamaShape(hidden=hidden, layers=layers, ffn=ffn, heads=4, kv_heads=4, vocab=vocab, tied=True)
        for lora_rank in (None, 8):
            torch.manual_seed(0)
            config = LlamaConfig(
                vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                intermediate_size=ffn, max_position_embeddings=args.check_seq, tie_word_embeddings=True,
                attn_implementation="sdpa",
            )
            model = LlamaForCausalLM(config)
            if lora_rank is not None:
                import peft

                model = peft.get_peft_model(model, peft.LoraConfig(task_type="CAUSAL_LM", r=lora_rank, target_modules=["q_proj", "v_proj"]))
            ids = torch.randint(3, vocab, (args.check_batch, args.check_seq))
            batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            with _PeakRSS() as plain:
                causal_lm_loss(model(**batch), batch).sum().backward()
            model.zero_grad(set_to_none=True)
            engine = BookKeepingClipping(model, causal_lm_loss, max_grad_norm=1.0)
            measured = {}
            finish = engine._finish_backward

            def spy() -> None:
                measured.setdefault("bytes", _kept_bytes(engine))
                finish()

            engine._finish_backward = spy
            with _PeakRSS() as private:
                engine.accumulate(batch)
            engine.remove()
            predicted = book_keeping_bytes(
                shape, tokens=args.check_batch * args.check_seq, examples=args.check_batch, lora_rank=lora_rank, copies_inputs=False
            )
            growth = (private.peak - plain.peak) / 2**20
            label = f"h={hidden} L={layers} i={ffn} V={vocab}"
            print(f"{label:<32} {'full' if lora_rank is None else 'LoRA r=8':<8} {measured['bytes'] / 2**20:>13.2f} "
                  f"{predicted / 2**20:>10.2f} {measured['bytes'] / predicted:>6.3f} {growth:>23.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES))
    parser.add_argument("--world", type=int, default=8)
    parser.add_argument("--gpu-gib", type=float, default=80.0)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--check", action="store_true", help="measure the book-keeping term on the CPU at small shapes")
    parser.add_argument("--check-batch", type=int, default=4)
    parser.add_argument("--check-seq", type=int, default=64)
    args = parser.parse_args()
    if args.check:
        check(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
