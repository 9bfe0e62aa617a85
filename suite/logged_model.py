"""A trained network as an MLflow PyTorch model: loadable with `mlflow.pytorch.load_model` in a process without
rnnbench, with its signature, an input example and its requirements.

It is pickled (mlflow.pytorch's default format) with the model code it needs (`suite/models` and the leaf
modules) bundled beside it, so loading needs torch and pydantic, not this repository. Not a PyTorch 2 exported
program: torch.export unrolls a recurrent layer over the sequence, which took 13-45 s a model at T=784
(gru, attn_rnn) against 0.03 s for the pickle. As with any pickled model, load only from stores you trust.
"""
from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from pathlib import Path

SUITE = Path(__file__).resolve().parent
BUNDLE = ("__init__.py", "errors.py", "schema.py", "models")  # what unpickling a Network imports: no more


def log_model(client, run_id: str, net, example) -> str:
    """`model/` on the run (no optimizer state); returns the format it was saved in."""
    import mlflow.pytorch
    import pydantic
    import torch
    from mlflow.models import infer_signature

    net = copy.deepcopy(net).to("cpu").eval()
    x = example[:2].detach().to("cpu", torch.float32)
    with torch.no_grad():
        y = net(x)
    common = {"signature": infer_signature(x.numpy(), y.numpy()), "input_example": x.numpy(),
              "pip_requirements": [f"torch=={torch.__version__.split('+')[0]}", "numpy"]}
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "code" / "suite"
        code.mkdir(parents=True)
        for name in BUNDLE:
            source = SUITE / name
            if source.is_dir():
                shutil.copytree(source, code / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, code / name)
        common["pip_requirements"].append(f"pydantic=={pydantic.VERSION}")
        quiet = logging.getLogger("mlflow.pytorch")  # its warning on pickles: said once, in this module's doc
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            mlflow.pytorch.save_model(net, f"{tmp}/model", serialization_format="pickle", code_paths=[str(code)],
                                      **common)
        finally:
            quiet.setLevel(level)
        client.log_artifacts(run_id, f"{tmp}/model", "model")
    client.set_tag(run_id, "model_format", "pickle")
    return "pickle"


def load_network(client, run_id: str):
    """The network a run logged, through mlflow.pytorch.load_model (read from the store the client is on)."""
    import mlflow.pytorch

    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pytorch.load_model(client.download_artifacts(run_id, "model", tmp), map_location="cpu")
