"""bench/pipeline_runs.py's memory figure counts memory that processes share once, as PostgreSQL's
server processes share its buffers; the kernel's own proportional count (PSS) is the oracle."""

import subprocess
import sys

import psutil

from ml_assets_tests.bench.smoke_runs import bench_module

SEGMENT = 192 * 2**20
MIB = 2**20
# A parent and its forked child both touch every page of one shared mapping, as PostgreSQL's
# processes touch its buffers, then wait for stdin to close.
SHARERS = f"""
import mmap, os, sys
segment = mmap.mmap(-1, {SEGMENT}, flags=mmap.MAP_SHARED)
for i in range(0, {SEGMENT}, 4096):
    segment[i] = 1
if os.fork() == 0:
    for i in range(0, {SEGMENT}, 4096):
        segment[i] = 2
    os.write(1, b"ready\\n")
    sys.stdin.read()
    os._exit(0)
sys.stdin.read()
os.wait()
"""


def test_shared_memory_counts_once() -> None:
    pipeline_runs = bench_module("pipeline_runs")
    with subprocess.Popen(
        [sys.executable, "-c", SHARERS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as sharers:
        try:
            assert sharers.stdout is not None and sharers.stdout.readline().strip() == "ready"
            root = psutil.Process(sharers.pid)
            tree = [root, *root.children(recursive=True)]
            assert len(tree) == 2
            counted = pipeline_runs.tree_rss_bytes([root])
            summed = sum(p.memory_info().rss for p in tree)
            proportional = sum(p.memory_full_info().pss for p in tree)
        finally:
            sharers.communicate(input="", timeout=60)
    assert sharers.returncode == 0
    # Summed RSS counts the segment twice; the bench's figure once, as the kernel's PSS does.
    assert summed - counted > SEGMENT - 16 * MIB
    assert abs(counted - proportional) < 32 * MIB, (counted / MIB, proportional / MIB)
    assert counted > SEGMENT
