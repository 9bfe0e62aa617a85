"""The task and model contract, enforced: a missing hook fails when the class is defined, the solve rule is the base
class's from the task's declared threshold, every task says where its data comes from, every model honours the
settings its Config has (and has only those it honours), and the README lists every hook there is."""
import dataclasses
import re
from pathlib import Path

import pytest
import torch
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models import MODELS, count_params
from suite.models.base import CAPABILITIES, ModelConfig, StackConfig, check_model
from suite.schema import STRICT, PosInt, Share
from tasks import TASKS
from tasks.base import SyntheticTask, Task

ROOT = Path(__file__).resolve().parent.parent


@dataclass(config=STRICT)
class SignConfig:
    seq_len: PosInt = 8
    solved_acc: Share = 0.9


def test_a_task_missing_a_required_hook_fails_when_it_is_defined():
    with pytest.raises(TypeError, match="missing make_batch"):
        class NoBatches(SyntheticTask):  # noqa: F841
            name, Config, output_kind, input_size, n_outputs = "x", SignConfig, "class_last", 1, 2

            def chance_loss(self):
                return 0.69

    with pytest.raises(TypeError, match="missing n_outputs, chance_loss, splits"):
        class NoData(Task):  # noqa: F841  (a dataset task: splits, not make_batch)
            name, Config, output_kind, input_size = "y", SignConfig, "class_last", 1

    with pytest.raises(TypeError, match="solved_mse does not fit its metric"):
        @dataclass(config=STRICT)
        class Wrong:
            solved_mse: float = 0.1

        class WrongRule(SyntheticTask):  # noqa: F841
            name, Config, output_kind, input_size, n_outputs = "z", Wrong, "class_last", 1, 2

            def chance_loss(self):
                return 0.69

            def make_batch(self, n, generator, device):
                return torch.zeros(n, 1, 1), torch.zeros(n, dtype=torch.long)


def test_the_solve_rule_and_the_data_source_come_from_the_base_class():
    class Sign(SyntheticTask):
        name, Config, output_kind, input_size, n_outputs = "sign", SignConfig, "class_last", 1, 2

        def chance_loss(self):
            return 0.69

        def make_batch(self, n, generator, device):
            x = torch.randn(n, self.cfg.seq_len, 1, generator=generator, device=device)
            return x, (x[:, 0, 0] > 0).long()

    class Files(Task):  # a dataset task that says nothing about its data
        name, Config, output_kind, input_size, n_outputs = "files", SignConfig, "class_last", 1, 2

        def chance_loss(self):
            return 0.69

        def splits(self, n_val, n_test, device):
            return {}

    sign = Sign(SignConfig())
    assert sign.is_solved(0.9) and not sign.is_solved(0.89) and sign.describe() == {"data_source": "synthetic"}
    assert Files(SignConfig()).describe() == {"data_source": "files"}
    mnist = TASKS["mnist_rows"](TASKS["mnist_rows"].Config(source="mnist-5k"))
    assert mnist.describe()["data_source"] == "mnist-5k"  # before any splits() call
    for name, task in TASKS.items():  # a task's solve threshold is a setting with its bounds, never code
        assert "is_solved" not in vars(task), name


def test_a_model_class_missing_a_required_part_fails_at_registration():
    class NoForward(nn.Module):
        name, Config = "noforward", ModelConfig

    with pytest.raises(TypeError, match="missing forward"):
        check_model(NoForward)

    class NoConfig(nn.Module):
        name = "noconfig"

        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="missing Config"):
        check_model(NoConfig)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_model_honours_num_layers_and_dropout_or_has_neither(model):
    cls = MODELS[model]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    if not issubclass(cls.Config, StackConfig):
        assert not {"num_layers", "dropout"} & fields
        return
    one, two = (cls.Config(hidden_size=8, num_layers=n, **({"heads": 2} if "heads" in fields else {}))
                for n in (1, 2))
    assert count_params(model, two, 3, 2) > count_params(model, one, 3, 2)  # a second layer is there
    net = cls(3, dataclasses.replace(two, dropout=0.5)).train()
    x = torch.randn(4, 6, 3)
    torch.manual_seed(0)
    a = net(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, net(x))  # dropout drops
    net.eval()
    assert torch.allclose(net(x), net(x))


def test_settings_a_model_does_not_have_are_neither_hashed_nor_logged(monkeypatch):
    """A model whose Config has no num_layers (the toy model) is not given `--set model.num_layers=2`: the key is
    left to the models that have it, so the toy's cells keep their config hash and log no such param."""
    import importlib.util

    from suite import config
    from suite.experiment import load_experiment

    spec = importlib.util.spec_from_file_location("toy_model", ROOT / "tests" / "toy" / "toy_model.py")
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    monkeypatch.setitem(MODELS, "toy", check_model(toy.Toy))
    monkeypatch.setattr(config, "MODELS", MODELS)
    plain, stacked = (load_experiment("smoke", sets=sets, models=["toy", "lstm"], tasks=["adding"], announce=None).cells
                      for sets in ([], ["model.num_layers=2"]))
    assert plain[0].config_hash == stacked[0].config_hash and "num_layers" not in stacked[0].resolved()["model"]
    assert plain[1].config_hash != stacked[1].config_hash and stacked[1].model_cfg.num_layers == 2


def test_the_readme_lists_every_hook_a_task_or_model_file_may_declare():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Adding a task or a model"):]
    section = section[:section.index("\n## ", 5)]
    hooks = {n for n in {*vars(Task), *vars(SyntheticTask)} if not n.startswith("_")}
    hooks -= {"REQUIRED", "outputs", "has_length"}  # the contract's own machinery, not a task's hooks
    hooks |= set(Task.REQUIRED) | set(CAPABILITIES) | {"search_space", "Config", "name"}
    hooks |= {f.name for f in dataclasses.fields(StackConfig)} | {"solved_acc", "solved_mse"}
    missing = sorted(h for h in hooks if not re.search(rf"`[^`\n]*\b{h}\b[^`\n]*`", section))  # in a code span
    assert missing == [], f"README › Adding a task or a model does not list: {missing}"
