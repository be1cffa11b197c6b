"""Rendering one dataset on many machines: job-array schedulers (Slurm, SGE), the
folder's progress across shards (``gs-backend status``), and Ray (``--ray``).
See docs/cluster.md."""
