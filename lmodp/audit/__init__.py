"""lmodp.audit: empirical ε lower bounds that check the noise drawn and the model trained against
the ε accounted (needs the ``train`` extra).

* :func:`audit_mechanism` — one release of a noise sampler against its mechanism's accounted law.
* :func:`audit_training` — a DP-SGD run audited in one run with canaries (Steinke, Nasr and
  Jagielski, NeurIPS 2023); :func:`audit_scores` computes the same bound from your own canary scores.
"""

from lmodp.audit.mechanism import MechanismAudit, audit_mechanism
from lmodp.audit.one_run import OneRunAudit, audit_scores, one_run_epsilon_lower, one_run_p_value
from lmodp.audit.training import TrainingAudit, audit_training

__all__ = [
    "MechanismAudit",
    "OneRunAudit",
    "TrainingAudit",
    "audit_mechanism",
    "audit_scores",
    "audit_training",
    "one_run_epsilon_lower",
    "one_run_p_value",
]
