"""The paper's training runs (GLUE tasks, batch 2048, δ = 1e-10) as :class:`~lmodp.accounting.spec.RunSpec` values.

SST-2 (q = 2048/67350, T = 192, δ = 1e-10) is lmodp's running example: the command line's
defaults, the demo, and the docs use :data:`SST2`, defined here only.
"""

from __future__ import annotations

from lmodp.accounting.spec import RunSpec

#: The paper's δ and (expected) batch size, the same for every released run.
PAPER_DELTA = 1e-10
PAPER_BATCH_SIZE = 2048
#: (training-set size, steps) of the released GLUE runs.
PAPER_DATASETS = {
    "SST-2": (67350, 192),
    "QNLI": (104744, 306),
    "QQP": (363847, 1062),
    "MNLI-matched": (392703, 1146),
}


def paper_run(dataset: str = "SST-2", *, geometry: str = "l2") -> RunSpec:
    """The run of the paper on ``dataset``: Poisson rate 2048/N, its steps, δ = 1e-10, clip norm 1."""
    if dataset not in PAPER_DATASETS:
        raise ValueError(f"dataset must be one of {sorted(PAPER_DATASETS)}, got {dataset!r}")
    size, steps = PAPER_DATASETS[dataset]
    return RunSpec(sample_rate=PAPER_BATCH_SIZE / size, steps=steps, delta=PAPER_DELTA, geometry=geometry)


#: The paper's SST-2 run (RoBERTa), L2 geometry with clip norm 1 as in DP-SGD.
SST2 = paper_run("SST-2")
#: How :data:`SST2` is written in messages and help texts.
SST2_TEXT = f"q = {PAPER_BATCH_SIZE}/{PAPER_DATASETS['SST-2'][0]}, T = {SST2.steps}, δ = {SST2.delta:g}"
