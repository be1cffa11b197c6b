"""Frame selection (--frames, --shard) and the train/val split."""

from __future__ import annotations

import pytest

from gs_backend.cli import parse_selection
from gs_backend.dataset.split import assign_splits
from gs_contract.errors import InputError

FRAMES = tuple(range(10))


@pytest.mark.parametrize(
    ("frames", "shard", "expected"),
    [
        (None, None, list(range(10))),
        ("2:5", None, [2, 3, 4]),
        ("7:", None, [7, 8, 9]),
        (":3", None, [0, 1, 2]),
        ("4", None, [4]),
        ("-1", None, [9]),
        ("-3:", None, [7, 8, 9]),
        (None, "0/3", [0, 3, 6, 9]),
        (None, "2/3", [2, 5, 8]),
        ("1:9", "1/2", [2, 4, 6, 8]),
    ],
)
def test_selection(frames, shard, expected):
    assert parse_selection(frames, shard, len(FRAMES)).apply(FRAMES) == expected


def test_shards_partition_the_selection():
    for count in (1, 2, 3, 7, 12):
        parts = [parse_selection("1:", f"{i}/{count}", 10).apply(FRAMES) for i in range(count)]
        assert sorted(x for p in parts for x in p) == list(range(1, 10))


@pytest.mark.parametrize(
    ("frames", "shard", "words"),
    [("a:b", None, "--frames"), ("10", None, "out of range"), ("5:5", None, "no frames"),
     (None, "2/2", "--shard"), (None, "1", "I/N"), (None, "0/0", "--shard")],
)
def test_bad_selection(frames, shard, words):
    with pytest.raises(InputError) as info:
        parse_selection(frames, shard, 10)
    assert words in info.value.message


def test_split_is_exact_seeded_and_independent_of_rendering_order():
    names = [f"f{i:03d}" for i in range(50)]
    a = assign_splits(names, 0.2, seed=0)
    assert list(a.values()).count("val") == 10
    assert assign_splits(names, 0.2, seed=0) == a
    assert assign_splits(names, 0.2, seed=1) != a
    assert set(assign_splits(names, 0.0, 0).values()) == {"train"}
    assert set(assign_splits(names, 1.0, 0).values()) == {"val"}


def test_small_datasets_get_both_splits():
    assert sorted(assign_splits(["a", "b"], 0.1, 0).values()) == ["train", "val"]
    assert sorted(assign_splits(["a", "b", "c"], 0.9, 0).values()) == ["train", "val", "val"]
    assert list(assign_splits(["a"], 0.5, 0).values()) in (["train"], ["val"])
