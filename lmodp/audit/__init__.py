"""lmodp.audit: empirical ε lower bounds that check the noise drawn and the model trained against
the ε accounted (needs the ``train`` extra).

* :func:`audit_mechanism` — one release of a noise sampler against its mechanism's accounted law.
* :func:`audit_scores` — the one-run ε lower bound of Steinke, Nasr and Jagielski (NeurIPS 2023)
  from canary scores.
"""

from lmodp.audit.mechanism import MechanismAudit, audit_mechanism
from lmodp.audit.one_run import OneRunAudit, audit_scores, one_run_epsilon_lower, one_run_p_value

__all__ = [
    "MechanismAudit",
    "OneRunAudit",
    "audit_mechanism",
    "audit_scores",
    "one_run_epsilon_lower",
    "one_run_p_value",
]
