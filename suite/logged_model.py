"""A trained network as an MLflow PyTorch model: loadable with `mlflow.pytorch.load_model` in a process without
rnnbench, with its signature, an input example and its requirements.

It is saved as a PyTorch 2 exported program (MLflow's "pt2"): a traced graph that loads without our code and
without running pickled code. A model torch.export cannot trace is pickled instead, with the model code it
needs (`suite/models` and two leaf modules) bundled beside it.
"""
from __future__ import annotations

import copy
import shutil
import tempfile
import warnings
from pathlib import Path

SUITE = Path(__file__).resolve().parent
BUNDLE = ("__init__.py", "errors.py", "schema.py", "models")  # what unpickling a Network imports: no more


def log_model(client, run_id: str, net, example) -> str:
    """`model/` on the run (no optimizer state); returns the format it was saved in (pt2 or pickle)."""
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
        try:
            with warnings.catch_warnings():  # nn.RNN's cached _flat_weights: harmless for an exported graph
                warnings.filterwarnings("ignore", message=".*were assigned during export.*")
                mlflow.pytorch.save_model(net, f"{tmp}/model", serialization_format="pt2", **common)
            kind = "pt2"
        except Exception:  # torch.export could not trace it: the pickle, with the code it needs
            shutil.rmtree(f"{tmp}/model", ignore_errors=True)
            code = Path(tmp) / "code" / "suite"
            code.mkdir(parents=True)
            for name in BUNDLE:
                source = SUITE / name
                if source.is_dir():
                    shutil.copytree(source, code / name, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(source, code / name)
            common["pip_requirements"].append(f"pydantic=={pydantic.VERSION}")
            mlflow.pytorch.save_model(net, f"{tmp}/model", serialization_format="pickle", code_paths=[str(code)],
                                      **common)
            kind = "pickle"
        client.log_artifacts(run_id, f"{tmp}/model", "model")
    client.set_tag(run_id, "model_format", kind)
    return kind


def load_network(client, run_id: str):
    """The network a run logged, through mlflow.pytorch.load_model (read from the store the client is on)."""
    import mlflow.pytorch

    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pytorch.load_model(client.download_artifacts(run_id, "model", tmp), map_location="cpu")
