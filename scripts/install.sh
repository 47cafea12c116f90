#!/usr/bin/env bash
# `make install` / `make uninstall`: the daemon under $PREFIX with its own virtual environment,
# the configuration in /etc/edge-ocr (never overwritten), the systemd unit installed and enabled.
# DESTDIR stages everything under another root (nothing is enabled then), for packaging and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ACTION=${1:-install}
PREFIX=${PREFIX:-/opt/edge-ocr}
DESTDIR=${DESTDIR:-}
UNITDIR=${UNITDIR:-/etc/systemd/system}
PYTHON=${PYTHON:-python3}
ROOT="$DESTDIR$PREFIX"
say() { echo "== $*"; }

if [ "$ACTION" = uninstall ]; then
  if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now edge-ocr.service edge-ocr-archive.service 2>/dev/null || true
  fi
  rm -f "$DESTDIR$UNITDIR/edge-ocr.service" "$DESTDIR$UNITDIR/edge-ocr-archive.service"
  [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl daemon-reload
  rm -rf "$ROOT"
  say "removed $PREFIX and the unit; kept /etc/edge-ocr and /var/lib/edge-ocr (the outbox): delete them by hand if wanted"
  exit 0
fi

[ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ] && { echo "make install: run as root (sudo make install)"; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "needs Python ≥ 3.11"; exit 1; }

say "code and model → $ROOT"
mkdir -p "$ROOT"
rm -rf "$ROOT/edge_ocr"
cp -r edge_ocr "$ROOT/"
find "$ROOT/edge_ocr" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p "$ROOT/models" "$ROOT/samples" "$ROOT/config"
cp models/ppocrv6_small_int8.tflite models/ppocrv6_small_int8.json models/ppocrv6_small.charset.txt \
   models/crnn_zh_en_int8.tflite models/crnn_zh_en_int8.json models/charset_zh_en.txt models/lm_zh_en.npz \
   models/crnn_student_zh_en_int8.tflite models/crnn_student_zh_en_int8.json \
   models/MODEL_CARD.md "$ROOT/models/"
cp -r samples/lines samples/board.mp4 samples/board.json "$ROOT/samples/"
cp config/edge-ocr.toml "$ROOT/config/edge-ocr.example.toml"
cp -r schemas README.md requirements/device.txt "$ROOT/"
mkdir -p "$ROOT/docs"
cp docs/*.md "$ROOT/docs/"

say "virtual environment (--system-site-packages, so the Pi's python3-picamera2 is visible)"
if [ ! -x "$ROOT/venv/bin/python" ]; then
  "$PYTHON" -m venv --system-site-packages "$ROOT/venv"
fi
"$ROOT/venv/bin/python" -m pip install -q --upgrade pip
"$ROOT/venv/bin/python" -m pip install -q -r "$ROOT/device.txt"
site=$("$ROOT/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PREFIX" > "$site/edge_ocr.pth"  # the code stays in $PREFIX, beside its models
cat > "$ROOT/venv/bin/edge-ocr" <<LAUNCHER
#!$PREFIX/venv/bin/python
import sys

from edge_ocr.cli import main

sys.exit(main())
LAUNCHER
chmod 755 "$ROOT/venv/bin/edge-ocr"

say "configuration → $DESTDIR/etc/edge-ocr/edge-ocr.toml"
mkdir -p "$DESTDIR/etc/edge-ocr"
if [ -e "$DESTDIR/etc/edge-ocr/edge-ocr.toml" ]; then
  echo "   kept the existing file (the new example is $PREFIX/config/edge-ocr.example.toml)"
else
  cp config/edge-ocr.toml "$DESTDIR/etc/edge-ocr/edge-ocr.toml"
fi
if [ ! -e "$DESTDIR/etc/edge-ocr/edge-ocr.env" ]; then
  printf '# Secrets for the service, e.g.\n# EDGE_OCR_MQTT_PASSWORD=…\n# EDGE_OCR_HTTP_TOKEN=…\n' \
    > "$DESTDIR/etc/edge-ocr/edge-ocr.env"
  chmod 600 "$DESTDIR/etc/edge-ocr/edge-ocr.env"
fi
if [ ! -e "$DESTDIR/etc/edge-ocr/edge-ocr-archive.env" ]; then
  printf '# Secrets for edge-ocr archive, e.g.\n# EDGE_OCR_MQTT_PASSWORD=…\n# EDGE_OCR_ARCHIVE_TOKEN=…\n# EDGE_OCR_ARCHIVE_DATABASE=postgresql://archive:…@localhost/archive\n' \
    > "$DESTDIR/etc/edge-ocr/edge-ocr-archive.env"
  chmod 600 "$DESTDIR/etc/edge-ocr/edge-ocr-archive.env"
fi

say "systemd unit → $DESTDIR$UNITDIR/edge-ocr.service"
mkdir -p "$DESTDIR$UNITDIR"
sed "s#@PREFIX@#$PREFIX#g" systemd/edge-ocr.service > "$DESTDIR$UNITDIR/edge-ocr.service"
chmod 644 "$DESTDIR$UNITDIR/edge-ocr.service"
say "systemd unit → $DESTDIR$UNITDIR/edge-ocr-archive.service (not enabled: the archive runs where it is wanted)"
sed "s#@PREFIX@#$PREFIX#g" systemd/edge-ocr-archive.service > "$DESTDIR$UNITDIR/edge-ocr-archive.service"
chmod 644 "$DESTDIR$UNITDIR/edge-ocr-archive.service"

if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now edge-ocr.service
  say "running: systemctl status edge-ocr; logs: journalctl -u edge-ocr -f"
  say "the archive (on the machine that keeps it): systemctl enable --now edge-ocr-archive"
else
  say "staged (DESTDIR=$DESTDIR) or no systemd here: not enabled"
fi
