"""Attack code: DeepFool, spatial grid/random search, adapters to foolbox and ART.

Every attack is an :class:`Attack` called as ``attack(model, images, labels, indices)`` and
returns one :class:`SampleResult` per sample. Create attacks by name through the registry
(``robustbench_win.registry.ATTACKS.create("deepfool")``) or from the classes here.
foolbox and ART are imported only when their adapters run.
"""

from attacks.art_backend import ArtDeepFool, ArtSpatial
from attacks.base import Attack, BatchOutput
from attacks.deepfool import DeepFool
from attacks.foolbox_backend import FoolboxDeepFool, FoolboxSpatial
from attacks.result import RECORD_FIELDS, SampleResult
from attacks.spatial import SpatialGrid, SpatialRandom, grid_transforms, warp

__all__ = [
    "Attack", "BatchOutput", "SampleResult", "RECORD_FIELDS",
    "DeepFool", "SpatialGrid", "SpatialRandom", "FoolboxDeepFool", "FoolboxSpatial", "ArtDeepFool", "ArtSpatial",
    "grid_transforms", "warp",
]
