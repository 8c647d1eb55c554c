"""Where a sweep's cells run: ``local`` (worker processes here), ``ray`` (a Ray cluster or a local instance),
``slurm`` (submitit). A new backend is one module and one line here."""

from forgetlab.registry import Registry
from forgetlab.sweep.backends.base import Backend, Job, Outcome
from forgetlab.sweep.backends.local import LocalBackend
from forgetlab.sweep.backends.ray_cluster import RayBackend
from forgetlab.sweep.backends.slurm import SlurmBackend

BACKENDS: Registry[type[Backend]] = Registry("backend")
BACKENDS.register("local")(LocalBackend)
BACKENDS.register("ray")(RayBackend)
BACKENDS.register("slurm")(SlurmBackend)

__all__ = ["BACKENDS", "Backend", "Job", "LocalBackend", "Outcome", "RayBackend", "SlurmBackend"]
