"""The image list of a recording: a CSV table ``name,timestamp`` (seconds, the video's own
clock). Each image becomes a frame named after the image's stem (its file name without
folder and extension), so names must give valid, unique frame names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath, PureWindowsPath

from gs_contract.errors import InputError
from gs_contract.recording.csvtable import read_csv_rows
from gs_contract.scenario.schema import FRAME_NAME_RULE, is_valid_frame_name

IMAGE_COLUMNS = ("name", "timestamp")


@dataclass(frozen=True)
class RecordedImage:
    """One recorded image.

    Attributes:
        name: the frame name: the image's stem, e.g. ``img_0007`` for ``video/img_0007.png``.
        file: the image name as written in the table.
        time_s: its timestamp in seconds (image clock).
        line: its line in the table.
    """

    name: str
    file: str
    time_s: float
    line: int


def image_stem(file: str) -> str:
    """The file name without folder (``/`` or ``\\``) and without its last extension."""
    path: PurePath = PureWindowsPath(file) if "\\" in file else PurePosixPath(file)
    return path.stem


def read_images(path: PurePath) -> tuple[RecordedImage, ...]:
    """The images of the table at ``path``, sorted by timestamp (stable: equal times keep
    the table's order).

    Raises:
        InputError: naming the file, the line and the column: a bad timestamp, a name
            whose stem is not a valid frame name, two images with one stem; an empty table.
    """
    images: list[RecordedImage] = []
    seen: dict[str, int] = {}
    for row in read_csv_rows(path, IMAGE_COLUMNS):  # type: ignore[arg-type]
        file = row.text("name")
        stem = image_stem(file)
        if not is_valid_frame_name(stem):
            raise row.fail("name", f"image {file!r}: its stem {stem!r} names the frame and "
                                   f"must be {FRAME_NAME_RULE}")
        if stem in seen:
            raise row.fail("name", f"image {file!r} has the same name {stem!r} as the image "
                                   f"on line {seen[stem]}; frames are named after images")
        seen[stem] = row.line
        images.append(RecordedImage(stem, file, row.number("timestamp"), row.line))
    if not images:
        raise InputError(path, None, "no images listed")
    return tuple(sorted(images, key=lambda image: image.time_s))
