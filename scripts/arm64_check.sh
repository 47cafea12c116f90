#!/usr/bin/env bash
# `make arm64-check`: run edge-ocr inside a minimal Debian arm64 root (bookworm, and with
# SUITE=trixie the Python 3.13 of Raspberry Pi OS trixie) under qemu-user
# and compare its text with this machine's, for the bundled sample lines and a whole board.
#
# - the root: mmdebstrap --variant=extract (download + unpack, no maintainer scripts, so no
#   binfmt_misc is needed; scripts/debian_root.sh); python3 and the libraries the wheels link against;
# - the wheels: requirements/device.txt for aarch64/cp311, fetched here with pip --platform
#   (manylinux tags up to 2.36, bookworm's glibc) into a plain folder;
# - qemu-aarch64-static -cpu cortex-a72 (a Raspberry Pi 4's core) runs the root's python3.11.
#   qemu-user shows programs the host's /proc/cpuinfo (x86); TFLite's CPU detection then
#   crashes, so the root gets a Pi 4 cpuinfo with as many cores as this machine has.
# Emulated timings mean nothing; this checks correctness only.
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=${SUITE:-bookworm}  # bookworm: Python 3.11; trixie: Python 3.13
case $SUITE in bookworm) PYV=3.11 ;; trixie) PYV=3.13 ;; *) echo "SUITE must be bookworm or trixie"; exit 1 ;; esac
PYT=${PYV/./}
OUT=${OUT:-build/arm64-$SUITE}
VENV=${VENV:-.venv}
ROOTFS=$OUT/rootfs
SITE=$OUT/site
mkdir -p "$OUT"
for tool in mmdebstrap qemu-aarch64-static; do
  command -v $tool >/dev/null || { echo "$tool missing: apt install mmdebstrap qemu-user-static"; exit 1; }
done

. scripts/debian_root.sh
if [ ! -x "$ROOTFS/usr/bin/python$PYV" ]; then
  echo "== arm64 Debian $SUITE root → $ROOTFS"
  debian_root arm64 "$SUITE" "$ROOTFS" extract python3,libpython$PYV-stdlib,libsqlite3-0,libstdc++6,libgcc-s1,zlib1g,libexpat1
fi
mkdir -p "$ROOTFS/proc"
"$VENV/bin/python" - "$ROOTFS/proc/cpuinfo" <<'PY'
import os, sys
core = ("processor\t: {}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
        "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n")
text = "".join(core.format(i) for i in range(os.cpu_count() or 1))
open(sys.argv[1], "w").write(text + "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B\n")
PY

if [ ! -f "$SITE/.done" ] || [ requirements/device.txt -nt "$SITE/.done" ]; then
  echo "== aarch64 wheels (requirements/device.txt, cp$PYT) → $SITE"
  rm -rf "$SITE"
  platforms=""
  for g in 36 35 34 33 32 31 30 29 28 27 26 24 17; do platforms="$platforms --platform manylinux_2_${g}_aarch64"; done
  # pip evaluates environment markers for the Python running it, not for --python-version.
  "$VENV/bin/python" - "$PYV" > "$OUT/device-requirements.txt" <<'PY'
import sys
from packaging.requirements import Requirement
for line in open("requirements/device.txt"):
    line = line.split("#")[0].strip()
    if line and (r := Requirement(line)).marker is None or line and r.marker.evaluate({"python_version": sys.argv[1]}):
        print(f"{r.name}{r.specifier}")
PY
  "$VENV/bin/python" -m pip install -q --target "$SITE" $platforms --platform manylinux2014_aarch64 \
    --only-binary=:all: --python-version "$PYV" --implementation cp --abi "cp$PYT" \
    -r "$OUT/device-requirements.txt" 2>&1 | grep -v "^WARNING: Location" || true
  touch "$SITE/.done"
fi

echo "== a board frame: the last frame of samples/board.mp4"
"$VENV/bin/python" -c "
import cv2, sys
cap = cv2.VideoCapture('samples/board.mp4'); last = None
while True:
    ok, f = cap.read()
    if not ok: break
    last = f
cv2.imwrite(sys.argv[1], last)" "$OUT/board.png"

inputs=(samples/lines/*.png "$OUT/board.png")
echo "== x86_64: edge-ocr recognize (ai-edge-litert, as on the device)"
EDGE_OCR_RUNTIME=litert "$VENV/bin/edge-ocr" recognize --json "${inputs[@]}" 2>/dev/null > "$OUT/x86_64.json"
echo "== aarch64 under qemu (cortex-a72), Debian $SUITE, Python $PYV: edge-ocr recognize"
start=$(date +%s)
qemu-aarch64-static -cpu cortex-a72 -L "$ROOTFS" -E PYTHONPATH="$SITE:$(pwd)" -E PYTHONDONTWRITEBYTECODE=1 \
  "$ROOTFS/usr/bin/python$PYV" -m edge_ocr recognize --json "${inputs[@]}" 2>/dev/null > "$OUT/aarch64.json"
echo "   ($(( $(date +%s) - start )) s emulated)"

"$VENV/bin/python" - "$OUT/x86_64.json" "$OUT/aarch64.json" <<'PY'
# The sample lines go straight to the model: their text must be identical. The board goes
# through OpenCV's warps first, whose float rounding differs between NEON and AVX: its lines
# must be found at the same places (within a pixel); a near-tie character may still differ,
# and that is reported, not failed.
import json, sys
x86, arm = (json.load(open(p)) for p in sys.argv[1:3])
print(f"runtime: x86_64 {x86['runtime']}, aarch64 {arm['runtime']}")
ok = True
lines_same = 0
for a, b in zip(x86["lines"], arm["lines"]):
    if a.get("mode") == "page":
        boxes = [max(abs(p - q) for pa, pb in zip(la["box"], lb["box"]) for p, q in zip(pa, pb))
                 for la, lb in zip(a["lines"], b["lines"])]
        placed = len(a["lines"]) == len(b["lines"]) and max(boxes, default=0) <= 1.0
        ok &= placed
        print(f"{'same' if placed else 'DIFF'}  {a['file']}: {len(a['lines'])} vs {len(b['lines'])} lines, "
              f"boxes within {max(boxes, default=0):.1f} px")
        for i, (la, lb) in enumerate(zip(a["lines"], b["lines"])):
            tag = "same" if la["text"] == lb["text"] else "near-tie"
            print(f"      line {i + 1} {tag}: {la['text']!r}" + ("" if tag == "same" else f" vs {lb['text']!r}")
                  + f" (confidence {la['confidence']:.3f} vs {lb['confidence']:.3f})")
        continue
    same = a.get("text") == b.get("text")
    lines_same += same
    ok &= same
    print(f"{'same' if same else 'DIFF'}  {a['file']}: {a.get('text')!r}" + ("" if same else f" vs {b.get('text')!r}"))
n = sum(1 for r in x86["lines"] if r.get("mode") != "page")
print(f"== sample lines: {lines_same} of {n} texts identical on aarch64 and x86_64")
sys.exit(0 if ok and len(x86["lines"]) == len(arm["lines"]) else 1)
PY
