"""Helpers for train(): instantiating bags of callbacks and loggers, run bookkeeping, trackers."""
