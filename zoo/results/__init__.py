"""Result values returned by `Model.predict`: small, frozen, printable and JSON-ready, one module per task."""

from zoo.results.batch import ResultList, SkippedInput
from zoo.results.classification import Classification
from zoo.results.detection import Detections
from zoo.results.flow import OpticalFlow
from zoo.results.image import ImageOutput
from zoo.results.segmentation import Segmentation
from zoo.results.video import VideoClassification

__all__ = [
    "Classification",
    "Detections",
    "ImageOutput",
    "OpticalFlow",
    "ResultList",
    "Segmentation",
    "SkippedInput",
    "VideoClassification",
]
