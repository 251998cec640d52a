"""Online learning on drifting streams: the streams, prequential evaluation, River's drift detectors
and how their alarms are scored (the drift race of :mod:`dlopt_core.experiments.stream`)."""

from dlopt_core.stream.detectors import (
    BASELINES,
    DETECTORS,
    DetectorScore,
    DetectorSettings,
    DetectorSpec,
    Watch,
    baseline_alarms,
    get_detector,
    mean_score,
    score_alarms,
)
from dlopt_core.stream.prequential import (
    POLICIES,
    Learner,
    Policy,
    StepRow,
    TorchLearner,
    prequential,
    recover_steps,
    rolling,
    stream_model,
)
from dlopt_core.stream.streams import (
    STREAMS,
    Stream,
    StreamSpec,
    get_stream_spec,
    make_stream,
)

__all__ = [
    "BASELINES", "DETECTORS", "POLICIES", "STREAMS", "DetectorScore", "DetectorSettings", "DetectorSpec", "Learner",
    "Policy", "StepRow", "Stream", "StreamSpec", "TorchLearner", "Watch", "baseline_alarms", "get_detector",
    "get_stream_spec", "make_stream", "mean_score", "prequential", "recover_steps", "rolling", "score_alarms",
    "stream_model",
]
