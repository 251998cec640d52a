"""Parameter sharing: tied autoencoders, one layer applied L times, a multi-task trunk.

A concept that trains (like :mod:`dlopt_core.compression`), above the engine: the variants as
registry entries (:mod:`.variants`), the tasks they learn (:mod:`.tasks`), the checks that read
from a built model and optimizer whether a tensor is really shared (:mod:`.checks`), PCGrad
(:mod:`.pcgrad`) and the training loop with its one step function (:mod:`.train`).
"""

from dlopt_core.sharing.checks import SharingCheck, sharing_check
from dlopt_core.sharing.pcgrad import pcgrad
from dlopt_core.sharing.tasks import TASKS, TaskSpec, get_task
from dlopt_core.sharing.train import Diverged, EpochRow, train_run
from dlopt_core.sharing.variants import FAMILIES, VARIANTS, FamilySpec, VariantSpec, build_variant, get_family, get_variant

__all__ = [
    "FAMILIES", "TASKS", "VARIANTS", "Diverged", "EpochRow", "FamilySpec", "SharingCheck", "TaskSpec", "VariantSpec",
    "build_variant", "get_family", "get_task", "get_variant", "pcgrad", "sharing_check", "train_run",
]
