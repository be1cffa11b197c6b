"""``gs-backend status DIR`` and ``gs-backend finalize DIR`` (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gs_contract.protocol import ExitCode


def add_cluster_parsers(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser(
        "status", help="a dataset folder's progress across shards (docs/cluster.md)",
        description="Done and missing frames, which shard owns each missing one, the runs "
                    "that wrote the folder, a held or stale lock and leftover temp files.")
    status.add_argument("out", type=Path, metavar="DIR", help="the dataset folder")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    finalize = sub.add_parser(
        "finalize", help="write manifest, COCO and data.yaml once every frame is rendered",
        description="Idempotent. Refused (exit 2, listing them) while frames are missing. "
                    "The last shard to finish does the same by itself.")
    finalize.add_argument("out", type=Path, metavar="DIR", help="the dataset folder")
    finalize.add_argument("--json", action="store_true",
                          help="print a JSON summary instead of text")


def run_status_command(args: argparse.Namespace) -> int:
    from gs_backend.cluster.status import folder_status, format_status

    status = folder_status(args.out)
    print(json.dumps(status, indent=1) if args.json else format_status(status))
    return ExitCode.OK


def run_finalize_command(args: argparse.Namespace) -> int:
    from gs_backend.dataset.finalize import finalize_dataset

    manifest = finalize_dataset(args.out)
    summary = {"out": str(args.out), "frames": manifest["frames_done"],
               "labelled_instances": manifest["labelled_instances"]}
    print(json.dumps(summary) if args.json else
          f"{args.out}: {summary['frames']} frames, {summary['labelled_instances']} labelled "
          "instances; manifest.json, data.yaml and COCO files written")
    return ExitCode.OK
