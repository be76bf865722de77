"""Trust the explanations: quality metrics (evaluate), drift between runs (compare),
fairness by group and example-based explanations.

Everything here reads attribution tables through :mod:`xaicli.io.attributions`.
"""
