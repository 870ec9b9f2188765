"""What happens around a run, torch-free: preflight, resume, the run lock, sweeps, metrics.json, secrets."""
