"""Where a run ran: the checkout's git sha, the machine and the libraries, recorded as tags on every run."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def git_sha() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + "-dirty" if dirty else sha) if sha else "unknown"


def environment() -> dict[str, str]:
    """Facts about the machine and libraries, recorded as tags on every run."""
    import torch

    env = {"torch_version": torch.__version__, "python_version": platform.python_version(), "cpu": cpu_model(),
           "cpu_count": str(os.cpu_count()), "torch_threads": str(torch.get_num_threads()),
           "jobs": os.environ.get("RNNBENCH_JOBS", "1")}  # cells trained side by side on this machine
    if torch.cuda.is_available():
        env |= {"gpu": torch.cuda.get_device_name(), "cuda_version": str(torch.version.cuda),
                "cudnn_version": str(torch.backends.cudnn.version())}
    return env


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
