"""Recording, loading, replaying and reporting runs."""

from guiagent.record.trajectory import (
    FORMAT_VERSION,
    ModelInfo,
    Recorder,
    RecordingError,
    Run,
    RunHeader,
    StepRecord,
    load,
)

__all__ = [
    "FORMAT_VERSION",
    "ModelInfo",
    "Recorder",
    "RecordingError",
    "Run",
    "RunHeader",
    "StepRecord",
    "load",
]
