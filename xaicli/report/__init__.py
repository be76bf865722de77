"""Read the results: global importance, reason codes, charts and the HTML report.

Everything here reads attribution tables through :mod:`xaicli.io.attributions`.
"""
