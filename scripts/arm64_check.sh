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

# Identical texts for the sample lines; for the board the same lines, boxes within a tenth of
# a line's height, near-tie characters only (scripts/arch_compare.py says how it judges).
"$VENV/bin/python" scripts/arch_compare.py "$OUT/x86_64.json" "$OUT/aarch64.json"
