"""Opt-in job features: concurrency limits, batches, unique jobs, rate limits, results and
cancellation, tracing, and the hooks that keep them off the plain path.
"""
