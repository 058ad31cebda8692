"""Attack code: DeepFool, SuperDeepFool, FMN, DDN, ALMA, spatial grid/random search, adapters to foolbox and ART.

Every attack is an :class:`Attack` called as ``attack(model, images, labels, indices)`` and
returns one :class:`SampleResult` per sample. Create attacks by name through the registry
(``robustbench_win.registry.ATTACKS.create("deepfool")``) or from the classes here.
foolbox and ART are imported only when their adapters run.
"""

from robustbench_win.attacks.alma import ALMA
from robustbench_win.attacks.art_backend import ArtDeepFool, ArtSpatial
from robustbench_win.attacks.base import Attack, BatchOutput, CallStats
from robustbench_win.attacks.ddn import DDN
from robustbench_win.attacks.deepfool import DeepFool, ProjectedDeepFool
from robustbench_win.attacks.fmn import FMN
from robustbench_win.attacks.foolbox_backend import FoolboxDDN, FoolboxDeepFool, FoolboxFMN, FoolboxSpatial
from robustbench_win.attacks.result import RECORD_FIELDS, SampleResult
from robustbench_win.attacks.spatial import SpatialGrid, SpatialRandom, grid_transforms, warp
from robustbench_win.attacks.superdeepfool import SuperDeepFool

__all__ = [
    "Attack", "BatchOutput", "CallStats", "SampleResult", "RECORD_FIELDS",
    "DeepFool", "ProjectedDeepFool", "SuperDeepFool", "FMN", "DDN", "ALMA", "SpatialGrid", "SpatialRandom",
    "FoolboxDeepFool", "FoolboxFMN", "FoolboxDDN", "FoolboxSpatial", "ArtDeepFool", "ArtSpatial",
    "grid_transforms", "warp",
]
