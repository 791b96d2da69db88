"""``lmodp finetune``: DP fine-tuning of a local transformers model on a CSV or JSONL file.

Runs :func:`lmodp.train.finetune` (Poisson batches, book-keeping clipping, the sound accountant)
and writes, into ``--out``: the fine-tuned model and its tokenizer (``model/``), the history
(``history.json``: per-step loss and ε, evaluations, the mechanism), the training curve
(``training-curve.png``, :func:`lmodp.plots.training_curve`) and, with ``--mechanism search``,
the search result (``search.json``). torch and transformers are imported only when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lmodp.accounting.spec import RunSpec
from lmodp.cli._mechanism import MechanismSpec, parse_noise, spec_help
from lmodp.cli._noise_report import noise_line, noise_report
from lmodp.cli._records import csv_records, jsonl_records
from lmodp.cli._run import add_accountant_argument

TASKS = ("auto", "classification", "causal-lm")

_EPILOG = f"""\
{spec_help(calibrated=True)}
A bare name is calibrated to --target-epsilon for this run's q = batch/N and T = epochs/q (gaussian is
the default; search writes every family's best to OUT/search.json); a search result FILE.json is re-checked
against --target-epsilon for this run. Any other SPEC is a fixed noise multiplier: its epsilon for this run
is reported, and --target-epsilon, if given, is a budget that stops the run.
Examples:
  lmodp finetune --data reviews.csv --model ./bert-tiny --out run1 --target-epsilon 3 --delta 1e-6
  lmodp finetune --data corpus.jsonl --model ./gpt2-small --task causal-lm --out run2 \\
      --target-epsilon 8 --delta 1e-6 --mechanism search --batch-size 256 --epochs 3
  lmodp finetune --data chats.jsonl --eval-data held-out.jsonl --model SmolLM2-135M-Instruct.Q4_1.gguf \\
      --task causal-lm --lora-r 8 --target-epsilon 3 --delta 1e-6 --sample 5 --out run3
  lmodp finetune --data reviews.csv --model ./bert-tiny --out run4 --delta 1e-6 -m gaussian:1.2
Causal LM: a JSONL/CSV with "prompt" and "completion" columns trains on the completion tokens only (the
prompt is context); otherwise every token of the text column is learned. Each example's loss is the mean
over its own target tokens; the evaluation reports the token-level perplexity.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` subcommand."""
    p = subparsers.add_parser(
        "finetune",
        help="DP fine-tune a local transformers model on a CSV/JSONL file",
        description="Fine-tune a local Hugging Face model with DP-SGD (Poisson sampling, per-example clipping, "
        "sound accounting) on a CSV or JSONL file.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data and model")
    data.add_argument("--data", type=Path, required=True, help="training file: .csv or .jsonl with a text column (and a label column)")
    data.add_argument("--eval-data", type=Path, help="evaluation file in the same format (accuracy or loss after each epoch)")
    data.add_argument("--model", type=Path, required=True, help="local model: a save_pretrained directory with its tokenizer, "
                      "a .gguf file, or a directory holding one .gguf file")
    data.add_argument("--task", choices=TASKS, default="auto", help="classification, causal-lm, or auto: classification "
                      "when the file has the label column (default: auto)")
    data.add_argument("--text-column", default="text", help="name of the text column (default: text)")
    data.add_argument("--label-column", default="label", help="name of the label column (default: label)")
    data.add_argument("--max-length", type=int, default=128, help="truncate texts to this many tokens (default: 128)")
    privacy = p.add_argument_group("privacy")
    privacy.add_argument("--target-epsilon", type=float, help="epsilon of the whole run (> 0); also the budget that stops it")
    privacy.add_argument("--delta", type=float, required=True, help="delta in (0, 1), e.g. below 1/N")
    privacy.add_argument("-m", "--mechanism", default="gaussian", metavar="SPEC", help="the noise: SPEC below (default: gaussian, calibrated to --target-epsilon)")
    privacy.add_argument("--max-grad-norm", type=float, default=1.0, help="per-example L2 clip norm C (default: 1)")
    add_accountant_argument(privacy)
    training = p.add_argument_group("training")
    training.add_argument("--batch-size", type=int, default=32, help="expected (Poisson) batch size (default: 32)")
    training.add_argument("--epochs", type=float, default=1.0, help="epochs; T = round(epochs / q) steps (default: 1)")
    training.add_argument("--learning-rate", type=float, default=5e-4, help="AdamW learning rate (default: 5e-4)")
    training.add_argument("--micro-batch-size", type=int, help="split logical batches into micro-batches of this size")
    training.add_argument("--seed", type=int, default=0, help="seed of the model's random draws (dropout) (default: 0)")
    training.add_argument("--sampling-seed", type=int, help="fix the batch sampling (default: secret; a known seed voids the subsampling credit)")
    training.add_argument("--noise-seed", type=int, help="fix the privacy noise (default: secret; for tests and reproductions only)")
    training.add_argument("--device", default="auto", help="cpu, cuda, or auto (default: auto)")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, required=True, help="output directory (created; its parent must exist)")
    out.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    out.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_language_model_arguments(p)
    p.set_defaults(func=run)


def add_language_model_arguments(p: argparse.ArgumentParser) -> None:
    """The causal-LM data columns, the LoRA adapters and the samples drawn after training."""
    lm = p.add_argument_group("causal LM, LoRA and samples")
    lm.add_argument("--prompt-column", default="prompt", help="causal LM: the prompt column (default: prompt); with "
                    "--completion-column present, only the completion is learned")
    lm.add_argument("--completion-column", default="completion", help="causal LM: the completion column (default: completion)")
    lm.add_argument("--lora-r", type=int, help="train LoRA adapters of this rank instead of every weight")
    lm.add_argument("--lora-alpha", type=float, help="LoRA scaling alpha (default: 2 x rank)")
    lm.add_argument("--lora-target-modules", help="comma-separated module names to adapt (default: peft's choice, e.g. q_proj,v_proj)")
    lm.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on the LoRA input (default: 0)")
    lm.add_argument("--sample", type=int, default=0, metavar="N", help="causal LM: after training, sample N texts "
                    "(from the eval prompts, else the training prompts, else the start token) into OUT/samples.jsonl")
    lm.add_argument("--sample-max-tokens", type=int, default=48, help="new tokens per sample (default: 48)")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The records of a .csv (header row) or .jsonl (one JSON object per line) file."""
    if not path.is_file():
        raise ValueError(f"--data/--eval-data: no such file {str(path)!r}")
    if path.suffix.lower() == ".csv":
        rows = csv_records(path)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = jsonl_records(path)
    else:
        raise ValueError(f"{str(path)!r}: the data file must end in .csv or .jsonl")
    if not rows:
        raise ValueError(f"{str(path)!r} has no rows")
    return rows


def column(rows: list[dict[str, Any]], name: str, path: Path) -> list[Any]:
    missing = [i for i, r in enumerate(rows) if r.get(name) in (None, "")]
    if missing:
        raise ValueError(f"{str(path)!r}: column {name!r} is missing or empty in row {missing[0] + 1} (columns: {sorted(rows[0])})")
    return [r[name] for r in rows]


def encode(tokenizer: Any, rows: list[dict[str, Any]], args: argparse.Namespace, task: str, labels: list[str] | None, path: Path) -> dict:
    """Token ids, attention mask and label ids (the class, or for causal LM the target tokens:
    :func:`encode_causal_lm`) of the rows, padded to the longest."""
    import torch

    if args.max_length < 2:
        raise ValueError(f"--max-length must be >= 2, got {args.max_length}")
    if task == "causal-lm":
        return encode_causal_lm(tokenizer, rows, args, path)
    enc = tokenizer(column(rows, args.text_column, path), truncation=True, max_length=args.max_length, padding="longest", return_tensors="pt")
    data = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if task == "classification":
        index = {label: i for i, label in enumerate(labels)}
        values = [str(v) for v in column(rows, args.label_column, path)]
        unknown = sorted(set(values) - set(index))
        if unknown:
            raise ValueError(f"{str(path)!r}: labels {unknown[:5]} do not occur in the training data")
        data["labels"] = torch.tensor([index[v] for v in values])
    return data


def has_prompts(rows: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    """Whether the rows are prompt/completion pairs (both columns present in the first row)."""
    return args.prompt_column in rows[0] and args.completion_column in rows[0]


def training_texts(rows: list[dict[str, Any]], args: argparse.Namespace, task: str) -> list[str]:
    """The texts :func:`encode` trains on: for causal LM on prompt/completion pairs each prompt
    followed by its completion, otherwise the text column."""
    if task == "causal-lm" and has_prompts(rows, args):
        return [f"{r[args.prompt_column]} {r[args.completion_column]}" for r in rows]
    return [str(v) for v in column(rows, args.text_column, args.data)]


def encode_causal_lm(tokenizer: Any, rows: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> dict:
    """:func:`lmodp.train.text_data.causal_lm_data` of the rows: prompt/completion pairs (the
    completion is learned) or the text column (all of it is learned), with EOS appended when the
    tokenizer has one."""
    from lmodp.train.text_data import causal_lm_data

    eos = tokenizer.eos_token_id is not None
    if has_prompts(rows, args):
        prompts = [str(v) for v in column(rows, args.prompt_column, path)]
        completions = [str(v) for v in column(rows, args.completion_column, path)]
        return causal_lm_data(tokenizer, prompts=prompts, completions=completions, max_length=args.max_length, add_eos=eos)
    texts = [str(v) for v in column(rows, args.text_column, path)]
    return causal_lm_data(tokenizer, texts=texts, max_length=args.max_length, add_eos=eos)


def model_location(args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """--model as a directory and the ``from_pretrained`` keywords (``gguf_file`` for a GGUF file)."""
    from lmodp.train.pretrained import pretrained_source

    try:
        return pretrained_source(args.model)
    except ValueError as err:
        raise ValueError(f"--model: {err}") from None


def load_pretrained(args: argparse.Namespace, location: tuple[Path, dict[str, str]], task: str, labels: list[str] | None) -> tuple[Any, Any]:
    """(tokenizer, model) from --model at ``location`` (:func:`model_location`: a directory, or a GGUF file), with LoRA
    adapters when --lora-r is given."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    directory, source = location
    tokenizer = AutoTokenizer.from_pretrained(directory, **source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    hf_logging.set_verbosity_error()  # the load report lists the new classification head, which is expected
    hf_logging.disable_progress_bar()
    if task == "classification":
        model = AutoModelForSequenceClassification.from_pretrained(
            directory, **source, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)}
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(directory, **source)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, with_lora(model, args, task)


def with_lora(model: Any, args: argparse.Namespace, task: str) -> Any:
    """``model`` with LoRA adapters of rank --lora-r (unchanged without it)."""
    if args.lora_r is None:
        for flag in ("lora_alpha", "lora_target_modules"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} needs --lora-r")
        return model
    from lmodp.train.lora import add_lora

    targets = None if args.lora_target_modules is None else [m.strip() for m in args.lora_target_modules.split(",") if m.strip()]
    try:
        return add_lora(model, r=args.lora_r, alpha=args.lora_alpha, target_modules=targets, dropout=args.lora_dropout, task=task)
    except ValueError as err:
        raise ValueError(f"--lora-*: {err}") from None


def write_samples(model: Any, tokenizer: Any, args: argparse.Namespace, rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """--sample N texts from the trained model (prompts of the eval file, else of the training
    file, else none), written to OUT/samples.jsonl; returns them."""
    from lmodp.train.generation import generate_samples

    source = eval_rows if eval_rows is not None and has_prompts(eval_rows, args) else rows
    prompts = [str(r[args.prompt_column]) for r in source] if has_prompts(source, args) else None
    texts = generate_samples(model, tokenizer, num_samples=args.sample, prompts=prompts, max_new_tokens=args.sample_max_tokens, generation_seed=args.seed)
    samples = [{"prompt": None if prompts is None else prompts[i % len(prompts)], "sample": text} for i, text in enumerate(texts)]
    with open(args.out / "samples.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(sample) + "\n" for sample in samples)
    return samples


def check_language_model_arguments(args: argparse.Namespace, task: str) -> None:
    """ValueError for --sample and --sample-max-tokens out of range or given for classification."""
    if args.sample < 0:
        raise ValueError(f"--sample must be >= 0, got {args.sample}")
    if args.sample and task != "causal-lm":
        raise ValueError("--sample draws texts from a causal LM: use it with --task causal-lm")
    if args.sample_max_tokens < 1:
        raise ValueError(f"--sample-max-tokens must be >= 1, got {args.sample_max_tokens}")


def choose_mechanism(args: argparse.Namespace, noise: str | MechanismSpec, *, run: RunSpec, progress: bool) -> dict[str, Any]:
    """The keyword arguments of :func:`lmodp.train.finetune` that fix the noise (and the search result)
    for ``run`` (q = batch/N, T = epochs/q, δ), given the parsed ``--mechanism`` (:func:`parse_noise`)."""
    target = args.target_epsilon
    if noise == "gaussian":
        return {"target_epsilon": _required_target(target, noise)}
    if noise in ("laplace", "search"):
        from lmodp import Laplace
        from lmodp.search import calibrate_scale
        from lmodp.search.least_noise import least_noise

        target = _required_target(target, noise)
        if noise == "laplace":
            return {"mechanism": calibrate_scale(Laplace(1.0), target, run, accountant=args.accountant), "max_epsilon": target}
        result = least_noise(target, run, accountant=args.accountant, progress=progress)
        return {"mechanism": result.mechanism, "max_epsilon": target, "search": result}
    if noise.search_result is not None and target is not None:
        return {"target_epsilon": target, "search_result": noise.search_result}
    return {"mechanism": noise.mechanism, "max_epsilon": target}


def _required_target(target: float | None, spec: str) -> float:
    if target is None:
        raise ValueError(f"--mechanism {spec} is calibrated to a budget: give --target-epsilon")
    return target


def run(args: argparse.Namespace) -> int:
    """Load, fine-tune privately, and write the model, the history and the training curve."""
    from lmodp._validation import require_delta, require_positive
    from lmodp.cli import finetune_checks as check

    require_delta("--delta", args.delta)
    chosen_noise = parse_noise(args.mechanism)
    if args.target_epsilon is not None:
        require_positive("--target-epsilon", args.target_epsilon)
    check.check_out_folder(args.out, overwrite=args.overwrite)
    directory, source = model_location(args)
    gguf = "gguf_file" in source  # a GGUF file holds its tokenizer and is a language model
    if not gguf:
        check.require_tokenizer(directory)
    check.require_device(args.device)
    rows = read_rows(args.data)
    eval_rows = read_rows(args.eval_data) if args.eval_data is not None else None
    task, chosen = check.choose_task(args.task, rows, text_column=args.text_column, label_column=args.label_column, path=args.data,
                                     pair_columns=(args.prompt_column, args.completion_column))
    check_language_model_arguments(args, task)

    from lmodp.plots import training_curve
    from lmodp.train import finetune
    from lmodp.train.privacy_engine import resolve_sample_rate, steps_for_epochs

    labels = sorted({str(v) for v in column(rows, args.label_column, args.data)}) if task == "classification" else None
    if not gguf:
        check.require_task_fits_model(task, directory, labels, chosen=chosen)
    q = resolve_sample_rate(len(rows), sample_rate=None, batch_size=args.batch_size)
    steps = steps_for_epochs(args.epochs, q)
    check.warn_if_delta_is_large(args.delta, len(rows))
    run_spec = RunSpec(sample_rate=q, steps=steps, delta=args.delta)  # sensitivity 1: the noise multiplier
    noise = choose_mechanism(args, chosen_noise, run=run_spec, progress=not args.no_progress)
    check.require_noise_fits(noise, run_spec, accountant=args.accountant)
    search_result = noise.pop("search", None)
    tokenizer, model = load_pretrained(args, (directory, source), task, labels)
    check.require_known_tokens(tokenizer, training_texts(rows, args, task), args.model)
    train = encode(tokenizer, rows, args, task, labels, args.data)
    evaluation = None if eval_rows is None else encode(tokenizer, eval_rows, args, task, labels, args.eval_data)
    if chosen:  # once every check has passed, so that an error stays one line
        print(f"lmodp finetune: NOTE: {chosen}", file=sys.stderr)
    history = finetune(
        model, train, evaluation, **noise, delta=args.delta, batch_size=args.batch_size, epochs=args.epochs,
        max_grad_norm=args.max_grad_norm, learning_rate=args.learning_rate, task=task, accountant=args.accountant,
        micro_batch_size=args.micro_batch_size, model_seed=args.seed, sampling_seed=args.sampling_seed, noise_seed=args.noise_seed,
        device=args.device, progress=not args.no_progress,
    )

    check.prepare_out_folder(args.out)
    model.save_pretrained(args.out / "model")
    tokenizer.save_pretrained(args.out / "model")
    (args.out / "history.json").write_text(json.dumps(history.to_dict(), indent=2))
    training_curve(history, title=f"lmodp finetune: {args.data.name}", path=args.out / "training-curve.png")
    if search_result is not None:
        (args.out / "search.json").write_text(search_result.to_json())
    samples = write_samples(model, tokenizer, args, rows, eval_rows) if args.sample else []
    summary = {
        "task": task, "task_chosen": chosen or "given by --task", "examples": len(rows), "sample_rate": q, "steps": len(history.step), "planned_steps": steps,
        "delta": args.delta, "epsilon": history.final_epsilon, "accountant": history.accountant,
        "stopped_by_budget": history.stopped_by_budget,
        "mechanism": history.mechanism, "noise": noise_report(history.mechanism, search_result), "final_loss": next((v for v in reversed(history.loss) if v is not None), None),
        history.metric_name: history.eval_metric[-1] if history.eval_metric else None, "out": str(args.out),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad), "lora_r": args.lora_r,
        "samples": [s["sample"] for s in samples],
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['steps']} of {steps} steps (q = {q:.6g}), epsilon = {history.final_epsilon:.6g} at delta = {args.delta:g} "
          f"({history.accountant.upper()} accountant){' (stopped by the budget)' if history.stopped_by_budget else ''}")
    print(noise_line(summary["noise"]))
    if history.eval_metric:
        print(f"eval {history.metric_name}: {history.eval_metric[-1]:.4f}")
    for sample in samples:
        print(f"sample: {sample['sample']!r}")
    print(f"wrote {args.out / 'model'}, {args.out / 'history.json'}, {args.out / 'training-curve.png'}"
          f"{', ' + str(args.out / 'samples.jsonl') if samples else ''}")
    return 0
