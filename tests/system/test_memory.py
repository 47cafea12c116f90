"""Freed frame-sized buffers leave the process (glibc): the daemon's steady RSS depends on it."""

import subprocess
import sys

import pytest

from edge_ocr.memory import return_large_buffers

# Frames of a camera come and go in a different order than they were allocated; afterwards the
# heap's resident size says whether the freed ones stayed.
CHURN = """
import sys, numpy as np
from edge_ocr.memory import return_large_buffers
if sys.argv[1] == "fixed":
    assert return_large_buffers()
keep = []
for i in range(60):
    frame = np.ones((1080, 1920, 3), np.uint8)            # 6.2 MB, freed at the next frame
    tile = np.ones((448, 800, 3), np.float32) * i          # 4.3 MB
    prob = np.ones((448, 800), np.float32)                  # 1.4 MB
    keep.append(np.ones(64 * 1024, np.uint8))               # small arrays that outlive the frames
    del frame, tile
    keep.append(np.ones(64 * 1024, np.uint8))
    del prob
rss = 0
current = None
for line in open("/proc/self/smaps"):
    if "-" in line.split(" ", 1)[0] and len(line.split()) >= 5:
        current = line.split()[-1]
    elif line.startswith("Rss:") and current == "[heap]":
        rss += int(line.split()[1])
print(rss // 1024)
"""


def _heap_mb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or not return_large_buffers(), reason="glibc only")
def test_freed_frames_leave_the_heap() -> None:
    default, fixed = _heap_mb("default"), _heap_mb("fixed")
    assert fixed < 16, f"heap holds {fixed} MB: 8 MB of small arrays and freed frames"
    assert default > fixed + 8, f"the churn does not exercise glibc's threshold (default {default} MB)"
