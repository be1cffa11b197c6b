"""Writing a scenario another command made (replay, camera paths): asset paths relative
to the written file, checked by the parser from where it will live, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gs_contract.atomic import write_text_atomic
from gs_contract.errors import InputError
from gs_contract.files import portable_path
from gs_contract.scenario.parse import parse_scenario

ASSET_PATH_KEYS = ("ply", "keep")


def with_portable_asset_paths(scenario: dict[str, Any], folder: str | os.PathLike[str]
                              ) -> dict[str, Any]:
    """A deep copy of ``scenario`` (a gs-scenario object) whose asset ``ply`` and ``keep``
    file paths are :func:`~gs_contract.files.portable_path` s from ``folder``; relative
    paths in ``scenario`` are taken from the working folder."""
    copy = json.loads(json.dumps(scenario))
    for asset in copy.get("assets", {}).values():
        for key in ASSET_PATH_KEYS:
            if isinstance(asset.get(key), str):
                asset[key] = portable_path(asset[key], folder)
    return copy


def write_scenario_file(scenario: dict[str, Any], out: str | os.PathLike[str]) -> None:
    """Write ``scenario`` to ``out`` atomically, asset paths made portable from ``out``'s
    folder (so the file keeps working when the folder and the assets move together).

    Raises:
        InputError: the scenario does not parse from ``out`` (naming the field), or
            ``out`` cannot be written; nothing is written then.
    """
    out = Path(out).absolute()
    portable = with_portable_asset_paths(scenario, out.parent)
    text = json.dumps(portable, indent=1) + "\n"
    parse_scenario(json.loads(text), out)
    try:
        write_text_atomic(out, text)
    except OSError as exc:
        raise InputError(out, None, f"cannot write: {exc.strerror or exc}") from None
