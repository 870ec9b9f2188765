"""Optimizers, parameter groups, learning-rate schedules, and textbook reference optimizers."""
