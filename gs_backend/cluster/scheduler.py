"""``--shard auto``: this task's shard I/N from a job-array scheduler's environment.

Supported (the first one set wins):

- Slurm (``sbatch --array``): ``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_MIN``,
  ``SLURM_ARRAY_TASK_STEP`` (1 when unset) and ``SLURM_ARRAY_TASK_COUNT``:
  I = (ID - MIN) / STEP, N = COUNT. Arrays need not start at 0 (``--array=1-16``) and
  may step (``--array=0-30:2``); a "%k" limit on running tasks changes nothing. An index
  list that is not one arithmetic range (``--array=1,4,9``) is refused: the task cannot
  know its position in it.
- Grid Engine (``qsub -t FIRST-LAST:STEP``): ``SGE_TASK_ID``, ``SGE_TASK_FIRST``,
  ``SGE_TASK_LAST``, ``SGE_TASK_STEPSIZE``: I = (ID - FIRST) / STEP,
  N = (LAST - FIRST) / STEP + 1. SGE sets ``SGE_TASK_ID=undefined`` outside arrays.

PBS/Torque and LSF export the task index but not the array's size; there pass
``--shard $PBS_ARRAY_INDEX/N`` (or ``$LSB_JOBINDEX``) yourself, minus the first index.
"""

from __future__ import annotations

from collections.abc import Mapping

from gs_contract.errors import InputError

SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
              "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT")
SGE_VARS = ("SGE_TASK_ID", "SGE_TASK_FIRST", "SGE_TASK_LAST", "SGE_TASK_STEPSIZE")


def shard_from_environment(env: Mapping[str, str]) -> tuple[int, int, str]:
    """Return (I, N, scheduler name) for ``--shard auto``.

    Raises:
        InputError: no supported array variable is set, or they are inconsistent
            (naming the variable).
    """
    if env.get("SLURM_ARRAY_TASK_ID"):
        return (*_slurm(env), "slurm")
    if env.get("SGE_TASK_ID") and env["SGE_TASK_ID"] != "undefined":
        return (*_sge(env), "sge")
    raise InputError("--shard auto", None,
                     "found no job-array variables (SLURM_ARRAY_TASK_ID, "
                     "SGE_TASK_ID): run it as an array task, or pass --shard I/N")


def _slurm(env: Mapping[str, str]) -> tuple[int, int]:
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    first = _int(env, "SLURM_ARRAY_TASK_MIN", task)
    step = _int(env, "SLURM_ARRAY_TASK_STEP", 1)
    count = _int(env, "SLURM_ARRAY_TASK_COUNT")
    last = _int(env, "SLURM_ARRAY_TASK_MAX", first + (count - 1) * step)
    if step < 1 or count < 1:
        raise InputError("--shard auto", "SLURM_ARRAY_TASK_STEP",
                         f"need STEP >= 1 and COUNT >= 1, got {step} and {count}")
    if last - first != (count - 1) * step:
        raise InputError("--shard auto", "SLURM_ARRAY_TASK_COUNT",
                         f"the array's indices are not one range {first}-{last}:{step} of "
                         f"{count} tasks (an index list?): pass --shard I/N yourself")
    return _position(task, first, step, count, "SLURM_ARRAY_TASK_ID")


def _sge(env: Mapping[str, str]) -> tuple[int, int]:
    task = _int(env, "SGE_TASK_ID")
    first = _int(env, "SGE_TASK_FIRST")
    last = _int(env, "SGE_TASK_LAST")
    step = _int(env, "SGE_TASK_STEPSIZE", 1)
    if step < 1 or last < first:
        raise InputError("--shard auto", "SGE_TASK_STEPSIZE",
                         f"need FIRST <= LAST and STEPSIZE >= 1, got {first}-{last}:{step}")
    return _position(task, first, step, (last - first) // step + 1, "SGE_TASK_ID")


def _position(task: int, first: int, step: int, count: int, name: str) -> tuple[int, int]:
    index, off_grid = divmod(task - first, step)
    if off_grid or not 0 <= index < count:
        raise InputError("--shard auto", name, f"{task} is not one of the array's {count} indices "
                                     f"from {first} in steps of {step}")
    return index, count


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name, "")
    if value == "" and default is not None:
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError("--shard auto", name, f"expected an integer, got {value!r}") from None
