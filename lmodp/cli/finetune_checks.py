"""What ``lmodp finetune`` checks before it trains or writes anything.

A run that would train on nothing useful is refused with a one-line ``ValueError`` (exit code 2)
that says what is wrong and how to fix it: a model folder without tokenizer files or whose
tokenizer knows none of the words, a text or label column that is not in the file, a task that
does not fit the model's head (or a head with another number of labels), a device that does not
exist, a budget that cannot pay for one step, an output folder that would be overwritten.
``--task auto`` says what it chose and why; a δ of at least 1/N gets a warning.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmodp.accounting.registry import resolve_accountant
from lmodp.accounting.spec import RunSpec

#: Files that hold a tokenizer's vocabulary (one is enough).
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model", "sentencepiece.bpe.model")
#: What ``lmodp finetune`` writes into ``--out`` (removed first when ``--overwrite`` is given).
OUTPUTS = ("model", "history.json", "training-curve.png", "search.json", "samples.jsonl")
#: Heads that are not a language model: causal-LM training would train something else.
_NOT_LANGUAGE_MODEL_HEADS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice")
#: Share of unknown tokens above which a tokenizer is refused.
_UNKNOWN_SHARE = 0.5


def check_out_folder(out: Path, *, overwrite: bool) -> Path:
    """``out`` if it can be written and, unless ``overwrite``, holds no earlier run: nothing is
    created here (the folder is made when the results are written, :func:`prepare_out_folder`)."""
    from lmodp.cli._output import writable_folder

    writable_folder(out, "--out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {str(out)!r} is not empty: choose a new folder, or pass --overwrite to replace its results")
    return out


def prepare_out_folder(out: Path) -> Path:
    """``out`` created, with the results of an earlier run removed (so none survives beside the new one)."""
    out.mkdir(exist_ok=True)
    for name in OUTPUTS:
        stale = out / name
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    return out


def require_device(device: str) -> str:
    """``device`` if this torch can run on it: ``auto``, ``cpu``, ``cuda``/``cuda:N`` (with a CUDA
    GPU), ``mps`` (on Apple silicon)."""
    import torch

    kind, _, index = device.partition(":")
    if device in ("auto", "cpu"):
        return device
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: this torch has no CUDA GPU (torch {torch.__version__}); use --device cpu or auto")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 ...)")
        return device
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("--device mps: MPS is not available in this torch; use --device cpu or auto")
        return device
    raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")


def require_tokenizer(model: Path) -> None:
    """A ValueError unless the model folder holds a tokenizer's vocabulary file."""
    if not any((model / name).is_file() for name in VOCABULARY_FILES):
        raise ValueError(
            f"--model {str(model)!r} has no tokenizer (none of {', '.join(VOCABULARY_FILES)}): save it beside the model "
            "with tokenizer.save_pretrained(...)"
        )


def require_known_tokens(tokenizer: Any, texts: Sequence[str], model: Path) -> None:
    """A ValueError if the tokenizer maps most of the words of the first texts to its unknown token."""
    unknown = getattr(tokenizer, "unk_token_id", None)
    if unknown is None:
        return
    special = set(getattr(tokenizer, "all_special_ids", [])) - {unknown}
    ids = [i for text in texts[:100] for i in tokenizer(text)["input_ids"] if i not in special]
    share = sum(i == unknown for i in ids) / len(ids) if ids else 0.0
    if share > _UNKNOWN_SHARE:
        raise ValueError(
            f"the tokenizer of --model {str(model)!r} maps {share:.0%} of the tokens of the training texts to "
            f"{tokenizer.unk_token!r}: it is not the tokenizer of this model or language"
        )


def choose_task(
    task: str, rows: list[dict[str, Any]], *, text_column: str, label_column: str, path: Path,
    pair_columns: tuple[str, str] = ("prompt", "completion"),
) -> tuple[str, str]:
    """(the task, why): ``task`` itself, or for ``auto`` classification when the file has the label
    column and causal-lm otherwise; the columns the task needs must be in the file (classification:
    the text and label columns; causal-lm: the text column or the prompt/completion ``pair_columns``)."""
    columns = list(rows[0])
    listed = ", ".join(columns)
    pairs = all(c in columns for c in pair_columns)
    if task == "auto":
        if label_column in columns:
            task, why = "classification", f"the file has a {label_column!r} column"
        else:
            task, why = "causal-lm", f"the file has no {label_column!r} column (its columns: {listed})"
        chosen = f"--task auto chose {task}: {why}"
    else:
        chosen = ""
    if text_column not in columns and (task == "classification" or not pairs):
        also = "" if task == "classification" else f", or give {pair_columns[0]!r} and {pair_columns[1]!r} columns"
        raise ValueError(f"{str(path)!r} has no column {text_column!r} (its columns: {listed}): pass --text-column{also}")
    if task == "classification" and label_column not in columns:
        raise ValueError(f"{str(path)!r} has no column {label_column!r} (its columns: {listed}): pass --label-column")
    return task, chosen


def require_task_fits_model(task: str, model: Path, labels: list[str] | None, *, chosen: str = "") -> None:
    """A ValueError where the model's saved head does not fit the task: causal-LM training of a
    classification (or other non-LM) head, or a classification head with another number of labels."""
    config = json.loads((model / "config.json").read_text())
    heads = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    because = f" ({chosen})" if chosen else ""
    other = [a for a in heads if a.endswith(_NOT_LANGUAGE_MODEL_HEADS)]
    if task == "causal-lm" and other:
        raise ValueError(
            f"the task is causal-lm{because} but --model {str(model)!r} is a {other[0]}: give the label column "
            "(--label-column NAME) or --task classification, or a language model"
        )
    if task == "classification" and labels is not None and any(a.endswith("ForSequenceClassification") for a in heads):
        from transformers import AutoConfig

        saved = AutoConfig.from_pretrained(model).num_labels  # not always in config.json (2 is the default)
        if saved != len(labels):
            shown = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
            raise ValueError(
                f"--model {str(model)!r} has a classification head for {saved} labels but the data have {len(labels)} "
                f"({shown}): use a model with {len(labels)} labels or a base model"
            )


def warn_if_delta_is_large(delta: float, examples: int) -> None:
    """A warning where δ >= 1/N: a mechanism that releases one record in the clear is then (0, δ)-DP."""
    if delta >= 1.0 / examples:
        warnings.warn(
            f"--delta {delta:g} is not below 1/N = 1/{examples} = {1.0 / examples:.3g}: at such a delta a run that "
            "publishes one record in the clear is still (0, delta)-DP; choose delta well below 1/N",
            UserWarning,
            stacklevel=2,
        )


def require_noise_fits(noise: dict[str, Any], run: RunSpec, *, accountant: str) -> None:
    """A ValueError, before training, where the noise cannot serve this run: a saved search result
    that does not meet the target for this run (:func:`lmodp.train.calibration.resolve_mechanism`),
    or a fixed mechanism whose budget (``max_epsilon``) cannot pay for the first step, so that
    training would stop before it starts. ε is lmodp's (``accountant``; the mechanism is the
    noise multiplier, sensitivity 1, in the l2 geometry of DP-SGD)."""
    import lmodp
    from lmodp.train.calibration import resolve_mechanism

    if noise.get("search_result") is not None:
        resolve_mechanism(mechanism=None, target_epsilon=noise["target_epsilon"], search_result=noise["search_result"],
                          run=run, accountant=accountant)
    mechanism, budget = noise.get("mechanism"), noise.get("max_epsilon")
    if mechanism is None or budget is None:
        return
    used = resolve_accountant(accountant, mechanism, "l2")
    first = lmodp.epsilon(mechanism, sample_rate=run.sample_rate, steps=1, delta=run.delta, geometry="l2", accountant=used)
    if first > budget:
        raise ValueError(
            f"--target-epsilon {budget:g} cannot pay for one step: the first step of {mechanism!r} at q = "
            f"{run.sample_rate:.6g} costs epsilon {first:.4g} at delta {run.delta:g} ({used.upper()} accountant); "
            "raise --target-epsilon, or use more noise"
        )
