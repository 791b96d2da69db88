"""lmodp.audit: empirical ε lower bounds that check the noise drawn and the model trained against
the ε accounted.

* :func:`audit_scores` — the one-run ε lower bound of Steinke, Nasr and Jagielski (NeurIPS 2023)
  from canary scores.
"""

from lmodp.audit.one_run import OneRunAudit, audit_scores, one_run_epsilon_lower, one_run_p_value

__all__ = ["OneRunAudit", "audit_scores", "one_run_epsilon_lower", "one_run_p_value"]
