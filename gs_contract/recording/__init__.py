"""The ``gs-recording`` v1 contract (DESIGN contract 8): a tracked recording replayed into
a ``gs-scenario``, with the same code on both sides (``gs-backend replay`` and the Blender
add-on's Import Tracked Recording).

- :mod:`.tracking`: tracker files -> per-sensor tracks (:func:`read_tracking`), formats
  in :mod:`.tracker_csv` and :mod:`.tracker_ndi`;
- :mod:`.images`: the image table (name, timestamp) -> frames named after image stems;
- :mod:`.interpolate`: a sensor's pose at any time (slerp + linear), with refusals;
- :mod:`.parse` / :mod:`.model`: :func:`read_recording` -> :class:`Recording`;
- :mod:`.replay`: :func:`replay_file` -> :class:`Replay`, :func:`write_replay_scenario`.

numpy and the standard library only.
"""

from gs_contract.recording.images import RecordedImage, read_images
from gs_contract.recording.interpolate import Bracket, bracket, slerp, tracker_from_sensor_at
from gs_contract.recording.model import (
    DEFAULT_MAX_GAP_S,
    RECORDING_FORMAT,
    RECORDING_VERSION,
    RecordedCamera,
    RecordedObject,
    Recording,
)
from gs_contract.recording.parse import read_recording
from gs_contract.recording.replay import (
    Replay,
    ReplayStats,
    replay_file,
    replay_recording,
    write_replay_scenario,
)
from gs_contract.recording.samples import QUATERNION_NORM_TOLERANCE
from gs_contract.recording.tracking import (
    FRAME_COUNTING_FORMATS,
    TRACKING_FORMATS,
    SensorTrack,
    read_tracking,
)

__all__ = [
    "DEFAULT_MAX_GAP_S", "FRAME_COUNTING_FORMATS", "QUATERNION_NORM_TOLERANCE",
    "RECORDING_FORMAT", "RECORDING_VERSION", "TRACKING_FORMATS",
    "Bracket", "RecordedCamera", "RecordedImage", "RecordedObject", "Recording", "Replay",
    "ReplayStats", "SensorTrack",
    "bracket", "read_images", "read_recording", "read_tracking", "replay_file",
    "replay_recording", "slerp", "tracker_from_sensor_at", "write_replay_scenario",
]
