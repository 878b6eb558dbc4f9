"""CPU settings of a run: denormals flushed while training, restored afterwards; threads per process from
the CPU affinity, a cgroup quota (fake cgroup folders here) and torchrun's environment."""
import os

import pytest
import torch

from auxrnn.train.cpu import flush_denormals, flushing_denormals


def test_flush_denormals_turns_the_flag_on_inside_and_restores_it():
    assert not flushing_denormals()
    with flush_denormals("cpu"):
        assert flushing_denormals()
        assert float(torch.tensor([1e-40]) * 2.0) == 0.0
        with flush_denormals("cpu"):  # nested: the inner block leaves the outer one's flag alone
            pass
        assert flushing_denormals()
    assert not flushing_denormals()
    assert float(torch.tensor([1e-40]) * 2.0) > 0.0


def test_flush_denormals_leaves_other_devices_alone():
    with flush_denormals("meta"):
        assert not flushing_denormals()


def test_automatic_threads_share_the_usable_cores_among_the_processes(monkeypatch, tmp_path):
    from auxrnn.train import cpu

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    auto = "automatic: 8 usable cores (affinity 8, no cgroup quota)"
    choose = lambda *a, **k: cpu.choose_threads(*a, cgroup=tmp_path, proc=tmp_path, **k)  # noqa: E731
    assert choose(0) == (8, f"{auto} / 1 process")
    assert choose(0, processes=3) == (2, f"{auto} / 3 processes")
    assert choose(0, processes=16)[0] == 1  # never 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # 4 processes on this host
    assert choose(0)[0] == 2
    assert choose(3) == (3, "set")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")  # the user's explicit choice wins and is named
    assert choose(3) == (5, "OMP_NUM_THREADS")


def _cgroup_v2(root, cpu_max: str, path: str = "/", parent_max: str | None = None):
    """A fake cgroup v2 mount under root/cg and a fake /proc under root/proc naming `path` as our cgroup."""
    cg, proc = root / "cg", root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(f"0::{path}\n")
    own = cg / path.strip("/")
    own.mkdir(parents=True, exist_ok=True)
    (own / "cpu.max").write_text(cpu_max + "\n")
    if parent_max is not None:
        (own.parent / "cpu.max").write_text(parent_max + "\n")
    return cg, proc


@pytest.mark.parametrize("cpu_max,quota,usable", [
    ("max 100000", None, 64),          # no limit
    ("200000 100000", 2.0, 2),         # docker --cpus 2
    ("250000 100000", 2.5, 2),         # a partial core is left idle (decision T29)
    ("50000 100000", 0.5, 1),          # less than a core: still one thread
    ("garbage", None, 64),             # malformed: no limit
])
def test_cgroup_v2_quota_caps_the_affinity(monkeypatch, tmp_path, cpu_max, quota, usable):
    from auxrnn.train import cpu

    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    cg, proc = _cgroup_v2(tmp_path, cpu_max)
    cores = cpu.core_budget(cg, proc)
    assert (cores.affinity, cores.quota, cores.usable) == (64, quota, usable)


def test_cgroup_v2_quota_of_an_ancestor_applies_and_the_tightest_wins(monkeypatch, tmp_path):
    from auxrnn.train import cpu

    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    cg, proc = _cgroup_v2(tmp_path, "max 100000", path="/jobs/job1", parent_max="300000 100000")
    assert cpu.cgroup_quota(cg, proc) == 3.0
    (cg / "jobs" / "job1" / "cpu.max").write_text("150000 100000\n")
    assert cpu.cgroup_quota(cg, proc) == 1.5
    # Inside a container the own path (a host path) is not under the mount: the mount's root is ours.
    (proc / "self" / "cgroup").write_text("0::/elsewhere/on/the/host\n")
    (cg / "cpu.max").write_text("400000 100000\n")
    assert cpu.cgroup_quota(cg, proc) == 4.0


def test_cgroup_v1_cfs_quota_is_read_where_that_is_what_exists(monkeypatch, tmp_path):
    from auxrnn.train import cpu

    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    own = cg / "cpu,cpuacct" / "docker" / "abc"
    own.mkdir(parents=True)
    (own / "cpu.cfs_quota_us").write_text("-1\n")
    (own / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu.core_budget(cg, proc) == cpu.Cores(8, None)  # -1: no quota
    (own / "cpu.cfs_quota_us").write_text("300000\n")
    cores = cpu.core_budget(cg, proc)
    assert (cores.quota, cores.usable) == (3.0, 3)
    assert cores.describe() == "3 usable cores (affinity 8, cgroup quota 3)"


def _torchrun_env(**extra) -> dict:
    return {"TORCHELASTIC_RUN_ID": "none", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "2", **extra}


def _parent_started_with(proc, env: dict) -> None:
    (proc / str(os.getppid())).mkdir(parents=True, exist_ok=True)
    (proc / str(os.getppid()) / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))


def test_torchruns_own_omp_num_threads_is_replaced_by_the_ranks_share(monkeypatch, tmp_path):
    """torchrun sets OMP_NUM_THREADS=1 when the user did not (nproc_per_node > 1); its agent's environment
    as started (/proc/<parent>/environ) does not have it, which tells it from the user's."""
    from auxrnn.train import cpu

    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    cg, proc = _cgroup_v2(tmp_path, "400000 100000")
    _parent_started_with(proc, {"PATH": "/usr/bin"})
    env = _torchrun_env(OMP_NUM_THREADS="1")
    assert cpu.torchrun_default_omp(env, proc)
    n, why = cpu.choose_threads(0, env=env, cgroup=cg, proc=proc)
    assert n == 2
    assert why == ("automatic: 4 usable cores (affinity 64, cgroup quota 4) / 2 ranks on this host "
                   "(torchrun's default OMP_NUM_THREADS=1 replaced)")
    assert cpu.choose_threads(3, env=env, cgroup=cg, proc=proc) == (3, "set")  # train.threads still applies


def test_a_users_explicit_omp_num_threads_wins_under_torchrun(monkeypatch, tmp_path):
    from auxrnn.train import cpu

    cg, proc = _cgroup_v2(tmp_path, "max 100000")
    _parent_started_with(proc, {"OMP_NUM_THREADS": "1"})  # the user ran `OMP_NUM_THREADS=1 torchrun ...`
    env = _torchrun_env(OMP_NUM_THREADS="1")
    assert not cpu.torchrun_default_omp(env, proc)
    assert cpu.choose_threads(0, env=env, cgroup=cg, proc=proc) == (1, "OMP_NUM_THREADS")
    # Any other value is never torchrun's; nor is a 1 outside torchrun or with one rank on the host.
    assert cpu.choose_threads(0, env=_torchrun_env(OMP_NUM_THREADS="3"), cgroup=cg, proc=proc) == (3, "OMP_NUM_THREADS")
    _parent_started_with(proc, {})
    assert not cpu.torchrun_default_omp({"OMP_NUM_THREADS": "1"}, proc)
    assert not cpu.torchrun_default_omp(_torchrun_env(OMP_NUM_THREADS="1", LOCAL_WORLD_SIZE="1"), proc)


def test_without_proc_the_ones_under_torchrun_are_taken_as_torchruns(tmp_path):
    from auxrnn.train import cpu

    assert cpu.torchrun_default_omp(_torchrun_env(OMP_NUM_THREADS="1"), tmp_path / "no-proc")


def test_the_usable_cores_follow_the_affinity_not_the_machine(tmp_path):
    from auxrnn.train.cpu import core_budget

    assert core_budget(cgroup=tmp_path).usable == len(os.sched_getaffinity(0))


# A heap with freed pages in its middle: 300 blocks of 1 MiB, below a raised mmap threshold so they come from
# the heap as a run's tensors do, every other one freed, the last one kept so glibc cannot trim the top itself.
FRAGMENT = """
import ctypes, json, sys
from auxrnn.train.cpu import release_free_memory
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: 1 MiB blocks from the heap, as after a large free
def anon():
    return int(next(l for l in open("/proc/self/status") if l.startswith("RssAnon")).split()[1]) // 1024
blocks = [libc.malloc(1 << 20) for _ in range(300)]
for b in blocks:
    ctypes.memset(b, 1, 1 << 20)
for b in blocks[:-1:2]:
    libc.free(b)
before = anon()
released = release_free_memory(sys.argv[1])
print(json.dumps({"before": before, "after": anon(), "released": released}))
"""


def test_release_free_memory_gives_the_heaps_freed_middle_back(tmp_path):
    import json
    import subprocess
    import sys

    from auxrnn.train import cpu

    if cpu._malloc_trim() is None:
        pytest.skip("no glibc malloc_trim in this C library")
    run = lambda device: json.loads(subprocess.run(  # noqa: E731
        [sys.executable, "-c", FRAGMENT, device], capture_output=True, text=True, check=True).stdout)
    kept = run("meta")  # not a CPU run: nothing is touched
    assert not kept["released"] and kept["after"] >= kept["before"] - 16
    freed = run("cpu")
    assert freed["released"] and freed["before"] - freed["after"] >= 100  # of the 150 MiB freed


def test_a_cpu_run_gives_free_memory_back_at_every_log_step(tmp_path, monkeypatch):
    from auxrnn.cli import main
    from auxrnn.train import loop
    from conftest import tiny_args

    calls = []
    monkeypatch.setattr(loop, "release_free_memory", lambda device: calls.append(str(device)) or True)
    args = tiny_args(32, 8, "train.steps=6", "train.eval_every=3", "train.checkpoint_every=0", log_every=2)
    assert main(["train", *args, f"train.out={tmp_path / 'run'}", "--no-progress"]) == 0
    assert calls == ["cpu"] * 3  # log steps 2, 4 and 6; evaluations at 3 and at the end are between them
