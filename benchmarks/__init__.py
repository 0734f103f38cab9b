"""Benchmarks: our LangChain history against raw redis-py and langchain-community.

Run ``scripts/bench.sh`` (or ``python -m benchmarks.run``); see :mod:`benchmarks.run`.
"""
