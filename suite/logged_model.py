"""A trained network as an MLflow PyTorch model: loadable with `mlflow.pytorch.load_model` in a process without
rnnbench, with its signature, an input example and its requirements.

It is pickled (mlflow.pytorch's default format) with the model code it needs (`suite/models` and the leaf
modules) bundled beside it, so loading needs torch and pydantic, not this repository. Not a PyTorch 2 exported
program: torch.export unrolls a recurrent layer over the sequence, which took 13-45 s a model at T=784
(gru, attn_rnn) against 0.03 s for the pickle. As with any pickled model, load only from stores you trust.

It is an MLflow 3 logged model (the experiment's Models tab, the runs table's Models column) named `model` and made
by its run, so `runs:/<run_id>/model` finds it (MLflow resolves that URI to the run's logged model of that name);
the run's params are the model's, and its test metrics are linked to it (runner._record). Made through the
store's client: mlflow.pytorch.log_model and the fluent logged-model calls use the global tracking URI, which
rnnbench never sets.
"""
from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
from pathlib import Path

SUITE = Path(__file__).resolve().parent
BUNDLE = ("__init__.py", "errors.py", "schema.py", "models")  # what unpickling a Network imports: no more


def log_model(client, run_id: str, net, example) -> str:
    """The run's logged model (no optimizer state), READY once its files are up (FAILED if they did not go up);
    returns its id, for the metrics that describe it."""
    import mlflow.pytorch
    import pydantic
    import torch
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model, infer_signature

    net = copy.deepcopy(net).to("cpu").eval()
    x = example[:2].detach().to("cpu", torch.float32)
    with torch.no_grad():
        y = net(x)
    common = {"signature": infer_signature(x.numpy(), y.numpy()), "input_example": x.numpy(),
              "pip_requirements": [f"torch=={torch.__version__.split('+')[0]}", "numpy"]}
    run = client.get_run(run_id)
    model = client.create_logged_model(run.info.experiment_id, name="model", source_run_id=run_id,
                                       params=run.data.params, tags={"model_format": "pickle"})
    try:
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
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
                                          mlflow_model=Model(artifact_path=model.artifact_location, run_id=run_id,
                                                             model_uuid=model.model_id, model_id=model.model_id),
                                          **common)
            finally:
                quiet.setLevel(level)
            client.log_model_artifacts(model.model_id, f"{tmp}/model")
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.set_tag(run_id, "model_format", "pickle")
    return model.model_id


def register_version(client, name: str, run_id: str, tags: dict):
    """A registry version of the run's network, made from its logged model's own files: a `runs:/<run_id>/model`
    source gives `models:/<name>/<version>` an empty folder beside the model. Tied to the model as MLflow's
    register_model ties it: its id (a server checks the source against it and tags the model) and the model's
    mlflow.modelVersions tag, which its page lists. Not a `models:/<model_id>` source: the SQL registry store
    looks that up on the global tracking URI, which rnnbench never sets. A run from before logged models keeps
    `runs:/<run_id>/model`, its own artifacts."""
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    model = _logged_model(client, run_id)
    if model is None:
        return client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id, tags=tags)
    version = client.create_model_version(name, source=model.artifact_location, run_id=run_id, tags=tags,
                                          model_id=model.model_id)
    listed = json.loads(client.get_logged_model(model.model_id).tags.get(MLFLOW_MODEL_VERSIONS, "[]"))  # a server's?
    if (version.name, str(version.version)) not in {(v["name"], str(v["version"])) for v in listed}:  # 1 or "1"
        entry = {"name": version.name, "version": version.version}
        client.set_logged_model_tags(model.model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([*listed, entry])})
    return version


def _logged_model(client, run_id: str):
    """The run's logged model (its newest), None for a run from before logged models."""
    outputs = client.get_run(run_id).outputs
    model_ids = [o.model_id for o in outputs.model_outputs] if outputs else []
    return client.get_logged_model(model_ids[-1]) if model_ids else None


def load_network(client, run_id: str):
    """The network a run logged, through mlflow.pytorch.load_model, read from the store the client is on: from the
    logged model's own artifact location, since MLflow resolves `runs:/<run_id>/model` to a logged model through the
    global tracking URI, which rnnbench never sets (another store's, or none)."""
    import mlflow.artifacts
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    from suite.errors import UserError

    model = _logged_model(client, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "model", tmp) if model is None else \
                mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location, dst_path=tmp,
                                                    tracking_uri=client.tracking_uri)
        except (MlflowException, OSError):  # the store lists it, its files are gone (a folder moved or deleted)
            where = f"runs:/{run_id}/model" if model is None else model.artifact_location
            raise UserError(f"run {run_id}: its trained network is not at {where} (its artifacts were moved or "
                            "deleted); put them back, or delete the run and train it again") from None
        return mlflow.pytorch.load_model(path, map_location="cpu")
