"""The CPU thread budget: cgroup quotas, the share of each local process, the waiting policy set on import, and
the thread count in a run's identity."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from forgetlab import threads
from forgetlab.experiments import build_config
from forgetlab.experiments.base import EXPERIMENTS, run_identity
from forgetlab.threads import budget, cgroup_cpu_limit, thread_budget


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_tightest_along_the_path(tmp_path):
    write(tmp_path / "self", "0::/jobs/job7\n")
    write(tmp_path / "fs" / "cpu.max", "max 100000\n")
    write(tmp_path / "fs" / "jobs" / "cpu.max", "250000 100000\n")  # 2.5 CPUs for every job
    write(tmp_path / "fs" / "jobs" / "job7" / "cpu.max", "300000 100000\n")  # asks for 3, the parent allows 2.5
    assert cgroup_cpu_limit(tmp_path / "fs", tmp_path / "self") == 2.5


def test_cgroup_v2_without_a_quota_and_on_hybrid_hosts(tmp_path):
    write(tmp_path / "self", "0::/\n")
    write(tmp_path / "fs" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path / "fs", tmp_path / "self") is None
    write(tmp_path / "fs" / "unified" / "cpu.max", "50000 100000\n")  # hybrid: v2 mounted at unified/
    assert cgroup_cpu_limit(tmp_path / "fs", tmp_path / "self") == 0.5


def test_cgroup_v1_quota_and_unlimited(tmp_path):
    write(tmp_path / "self", "4:memory:/x\n3:cpu,cpuacct:/slurm/job1\n")
    write(tmp_path / "fs" / "cpu" / "slurm" / "job1" / "cpu.cfs_quota_us", "400000\n")
    write(tmp_path / "fs" / "cpu" / "slurm" / "job1" / "cpu.cfs_period_us", "100000\n")
    write(tmp_path / "fs" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "fs" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path / "fs", tmp_path / "self") == 4.0
    write(tmp_path / "fs" / "cpu" / "slurm" / "job1" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_limit(tmp_path / "fs", tmp_path / "self") is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_cpu_limit(tmp_path / "nothing", tmp_path / "missing") is None


def test_available_cpus_is_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 2.5)
    assert threads.available_cpus() == 3  # a fractional quota still gets its partial CPU
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.available_cpus() == 8


def test_local_processes_share_the_cpus(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert budget() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    assert budget() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert budget() == 1  # never zero
    assert budget(5) == 5  # an explicit count wins


def test_thread_budget_sets_and_restores_torch_threads():
    before = torch.get_num_threads()
    with thread_budget(3) as used:
        assert used == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


def test_importing_forgetlab_makes_openmp_threads_wait_passively():
    code = "import os, forgetlab; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # the user's choice wins
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip() == "ACTIVE"


def test_the_thread_count_used_is_part_of_the_identity(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)

    def identity(**fields):
        config = build_config({"experiment": "forget_generalization", "model": {"name": "tiny-llama"}, "tasks": ["synth_compare"], **fields})
        return run_identity(config, EXPERIMENTS.get("forget_generalization"), 1)

    default, one, two = identity(), identity(cpu_threads=1), identity(cpu_threads=2)
    assert default.fingerprint == two.fingerprint  # the budget (2) named or not: the same run
    assert one.fingerprint != two.fingerprint
    assert (default.record["cpu_threads"], one.record["cpu_threads"]) == (2, 1)

