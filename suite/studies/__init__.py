"""Studies beyond the benchmark matrix: length sweeps (horizon), gradient flow, and training speed."""
