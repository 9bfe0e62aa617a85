"""Models: the registry (registry.py: add a model there), what a model file provides (base.py), the network and
its sizing (network.py), initialisation schemes (init.py)."""
from suite.models.base import ModelConfig
from suite.models.network import Network, count_params, init_schemes, resolve
from suite.models.registry import MODELS

__all__ = ["MODELS", "ModelConfig", "Network", "count_params", "init_schemes", "resolve"]
