"""Benchmarks of ``xai explain`` against the reference libraries and the model's own cost.

Run ``python -m benchmarks.run`` (about 10 minutes on 2 cores) or ``--quick`` (about one
minute). Every figure of a case is measured in the same run, side by side, so machine
noise cancels in the ratios. See ``benchmarks/run.py`` and ``benchmarks/results/``.
"""
