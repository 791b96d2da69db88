"""The one ``--mechanism SPEC`` grammar of the command line: its help text and its parser, used by
``lmodp epsilon``, ``lmodp plot``, ``lmodp audit`` and ``lmodp finetune``.

A SPEC is one of:

* ``gaussian:SIGMA``, ``laplace:SCALE``: the two one-parameter families, by their parameter;
* ``FAMILY:NAME=VALUE,...``: any registered family (:func:`lmodp.mechanisms.registered_families`)
  by the parameter names of its ``Mechanism.to_dict()``; a VALUE is a number or a list
  ``[a,b,...]`` (``laplace_mixture``'s atoms and weights);
* ``paper:EPS[:GROUP]``, ``paper-scale:EPS[:GROUP]``: the LMO-DP authors' released set for
  per-step ε = EPS (:func:`lmodp.paper.paper_mechanism`), E_lambda read as a rate (as their
  accountant reads it) or as a scale (as their sampler reads it);
* ``paper:FILE.json``, ``paper-scale:FILE.json``: an authors' parameter file, read the same two ways
  (:func:`lmodp.paper.lmo_from_paper_json`);
* ``FILE.json``: an lmodp mechanism (``Mechanism.to_dict()``) or a search result (its
  ``"mechanism"`` entry);
* only where the command has a budget (``lmodp finetune``): ``gaussian``, ``laplace`` or
  ``search``, the noise calibrated to ``--target-epsilon`` (:data:`CALIBRATED`).

A SPEC a command cannot use is a ``ValueError`` naming the forms it accepts (one line, exit code 2).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmodp.mechanisms import Mechanism, describe, family_class, mechanism_from_dict, registered_families

#: How each ``paper`` prefix reads the authors' E_lambda (``lmo_from_paper_json(exponential=)``).
PAPER_READINGS = {"paper": "rate", "paper-scale": "scale"}
#: The families with a one-number short form, and the parameter that number is.
SHORT_FORMS = {"gaussian": "sigma", "laplace": "scale"}
#: Bare names that mean "calibrated to --target-epsilon" (commands with a budget only).
CALIBRATED = ("gaussian", "laplace", "search")

FORMS = (
    "gaussian:SIGMA, laplace:SCALE, FAMILY:NAME=VALUE,..., paper:EPS[:GROUP], paper-scale:EPS[:GROUP], "
    "paper:FILE.json, paper-scale:FILE.json or FILE.json"
)
CALIBRATED_FORMS = f"{FORMS}, or gaussian, laplace or search (calibrated to --target-epsilon)"


def spec_help(*, calibrated: bool = False) -> str:
    """The SPEC forms as the epilog of a command's ``--help`` (``calibrated``: with the bare names)."""
    from lmodp.paper import GROUPS

    text = f"""\
SPEC (-m/--mechanism):
  gaussian:SIGMA             Gaussian noise, standard deviation SIGMA
  laplace:SCALE              Laplace noise, scale b = SCALE
  FAMILY:NAME=VALUE,...      a registered family (lmodp.mechanisms.registered_families()) by its
                             parameters (the names of its to_dict()), e.g.
                             lmo:gamma_weight=1,gamma_shape=2,gamma_scale=1
                             generalized_gaussian:scale=1,power=1.5
                             laplace_mixture:omega_atoms=[0.5,1],omega_weights=[0.5,0.5]
  paper:EPS[:GROUP]          the LMO-DP authors' released set for per-step eps = EPS, E_lambda read
                             as a rate (as their accountant reads it);
                             GROUP: {', '.join(GROUPS)} (default {GROUPS[0]})
  paper-scale:EPS[:GROUP]    the same set, E_lambda read as a scale (as their sampler reads it: the
                             noise their code adds)
  paper:FILE.json            an authors' parameter file (a1, a3, a4, G_theta, G_k, E_lambda, U_a,
                             U_b), E_lambda read as a rate; paper-scale:FILE.json: as a scale
  FILE.json                  an lmodp mechanism (Mechanism.to_dict()) or a search result
                             (lmodp search --out)"""
    if calibrated:
        text += """
  gaussian | laplace         the Gaussian / Laplace whose parameter meets --target-epsilon for this
                             run
  search                     the least noise lmodp.search finds for this run (Gaussian, Laplace,
                             LMO, generalized Gaussian)"""
    return text


@dataclass(frozen=True)
class MechanismSpec:
    """A parsed SPEC: the mechanism, the SPEC as written, and where it came from."""

    text: str
    mechanism: Mechanism
    #: ``(EPS, GROUP, reading)`` of a released paper set, else None.
    paper_set: tuple[float, str, str] | None = None
    #: The file, when the SPEC is a search result (``lmodp finetune`` re-checks it against its target).
    search_result: Path | None = None

    def label(self, *, rescaled: bool = False) -> str:
        """A legend label: a paper set by its name (the paper's ε = 0.7 set), the others described;
        ``rescaled`` (a figure that rescales each mechanism): the shape only."""
        if self.paper_set is not None:
            budget, group, reading = self.paper_set
            name = f"the paper's ε = {budget:g} set" + ("" if group == "task1" else f" ({group})")
            return f"LMO shape of {name}" if rescaled else f"{name} (LMO, E_λ a {reading})"
        if rescaled:
            return {"gaussian": "Gaussian", "laplace": "Laplace"}.get(self.mechanism.family, f"shape of {describe(self.mechanism)}")
        return describe(self.mechanism)


def parse_mechanism(text: str, *, option: str = "--mechanism", forms: str = FORMS) -> MechanismSpec:
    """The mechanism of a SPEC (see the module docstring); ``ValueError`` naming ``option`` and the
    ``forms`` accepted otherwise. Bare family names are refused here (see :func:`parse_noise`)."""
    prefix, sep, rest = text.partition(":")
    if not sep and (text in registered_families() or text in CALIBRATED):
        raise ValueError(
            f"{option} {text!r}: a bare name means noise calibrated to --target-epsilon, which only lmodp finetune has; "
            f"write one of {forms}"
        )
    if sep and prefix in PAPER_READINGS:
        return _paper(text, rest, PAPER_READINGS[prefix], option)
    if sep and prefix in registered_families():
        return MechanismSpec(text, _family(text, prefix, rest, option))
    if sep and "=" in rest:
        raise ValueError(f"{option} {text!r}: FAMILY must be one of {list(registered_families())}, got {prefix!r}")
    return _file(text, option, forms)


def parse_noise(text: str, *, option: str = "--mechanism") -> str | MechanismSpec:
    """A SPEC of a command with a budget: one of :data:`CALIBRATED` as written, or the parsed SPEC."""
    if text in CALIBRATED:
        return text
    if text in registered_families():
        raise ValueError(f"{option} {text!r}: only gaussian, laplace and search are calibrated here; write one of {CALIBRATED_FORMS}")
    return parse_mechanism(text, option=option, forms=CALIBRATED_FORMS)


def _family(text: str, family: str, rest: str, option: str) -> Mechanism:
    """The mechanism of ``FAMILY:NUMBER`` (a short form) or ``FAMILY:NAME=VALUE,...``, built by the
    family's constructor, whose keywords are the parameter names of its ``to_dict()``."""
    if family in SHORT_FORMS and "=" not in rest:
        parameters: dict[str, Any] = {SHORT_FORMS[family]: _number(rest, text, option, f"{family}:{SHORT_FORMS[family].upper()}")}
    else:
        parameters = _parameters(text, rest, option)
    cls = family_class(family)
    signature = {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    unknown = sorted(set(parameters) - set(signature))
    missing = [name for name, p in signature.items() if p.default is p.empty and name not in parameters]
    if unknown or missing:
        wrong = f"unknown {family} parameter(s) {unknown}" if unknown else f"give {family}'s {missing}"
        raise ValueError(f"{option} {text!r}: {wrong}; the {family} parameters are {list(signature)}")
    try:
        return cls(**parameters)
    except ValueError as err:
        raise ValueError(f"{option} {text!r}: {err}") from None


def _number(value: str, text: str, option: str, form: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{option} {text!r}: write {form} with a number") from None


def _split_top_level(rest: str) -> list[str]:
    """``rest`` split at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(rest):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(rest[start:i])
            start = i + 1
    items.append(rest[start:])
    return items


def _parameters(text: str, rest: str, option: str) -> dict[str, Any]:
    """``NAME=VALUE,...`` as a dict: a VALUE is a number or ``[a,b,...]``."""
    form = "FAMILY:NAME=VALUE,... (a VALUE is a number or [a,b,...])"
    parameters: dict[str, Any] = {}
    for item in _split_top_level(rest):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name:
            raise ValueError(f"{option} {text!r}: write {form}")
        if name in parameters:
            raise ValueError(f"{option} {text!r}: {name} given twice")
        if value.startswith("[") and value.endswith("]"):
            parameters[name] = [_number(v, text, option, form) for v in value[1:-1].split(",")]
        else:
            parameters[name] = _number(value, text, option, form)
    return parameters


def _paper(text: str, rest: str, reading: str, option: str) -> MechanismSpec:
    from lmodp.paper import lmo_from_paper_json, paper_mechanism, paper_parameters

    if rest.lower().endswith(".json"):
        data = read_json_object(Path(rest), option)
        if "family" in data or isinstance(data.get("mechanism"), dict):
            raise ValueError(f"{option} {text!r}: {rest} is an lmodp file, not an authors' parameter file: write {rest}")
        unknown = sorted(set(data) - set(paper_parameters(0.3)))
        if unknown:
            raise ValueError(f"{option} {text!r}: unknown key(s) {unknown} for an authors' parameter file")
        try:
            return MechanismSpec(text, lmo_from_paper_json(data, exponential=reading))  # type: ignore[arg-type]
        except ValueError as err:
            raise ValueError(f"{option} {text!r}: {err}") from None
    number, _, group = rest.partition(":")
    form = "paper:EPS[:GROUP]" if reading == "rate" else "paper-scale:EPS[:GROUP]"
    budget = _number(number, text, option, form)
    try:
        mechanism = paper_mechanism(budget, group or "task1", exponential=reading)  # type: ignore[arg-type]
    except ValueError as err:
        raise ValueError(f"{option} {text!r}: {err}") from None
    return MechanismSpec(text, mechanism, paper_set=(budget, group or "task1", reading))


def read_json_object(path: Path, option: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``ValueError`` naming ``option`` where it is missing or not one."""
    if not path.is_file():
        raise ValueError(f"{option} {str(path)!r}: no such file")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{option} {str(path)!r}: cannot read it as JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{option} {str(path)!r} must hold a JSON object")
    return data


def _file(text: str, option: str, forms: str) -> MechanismSpec:
    path = Path(text)
    if not path.is_file() and path.suffix.lower() != ".json":
        raise ValueError(f"{option} must be one of {forms}, got {text!r}")
    data = read_json_object(path, option)
    search_result = None
    if isinstance(data.get("mechanism"), dict):
        data, search_result = data["mechanism"], path
    if "family" not in data:
        raise ValueError(
            f"{option} {text!r} has no \"family\": an lmodp file holds Mechanism.to_dict(); for an authors' parameter "
            f"file write paper:{text} (E_lambda read as a rate) or paper-scale:{text} (as a scale)"
        )
    try:
        return MechanismSpec(text, mechanism_from_dict(data), search_result=search_result)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{option} {text!r}: {err}") from None
