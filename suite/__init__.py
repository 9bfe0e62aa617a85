"""rnnbench: recurrent architectures on long-range dependency tasks, tracked in MLflow."""
