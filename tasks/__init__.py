"""The task registry: a plain dict filled by explicit imports. Add a task: its file in tasks/, then its import
and its name in the tuple below (the order reports show them in)."""
from tasks.adding import Adding
from tasks.assoc_recall import AssocRecall
from tasks.base import Task
from tasks.copy import Copy
from tasks.induction import Induction
from tasks.listops import ListOps
from tasks.lra_text import LraText
from tasks.mnist_pixels import MnistPixels
from tasks.mnist_rows import MnistRows
from tasks.parity import Parity
from tasks.permutation import Permutation
from tasks.scifar import Scifar
from tasks.selective_copy import SelectiveCopy
from tasks.temporal_order import TemporalOrder

TASKS: dict[str, type[Task]] = {t.name: t for t in (MnistRows, MnistPixels, Copy, Adding, SelectiveCopy, AssocRecall,
                                                    TemporalOrder, ListOps, Parity, Permutation, Induction, Scifar,
                                                    LraText)}
