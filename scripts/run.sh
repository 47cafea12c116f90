#!/usr/bin/env bash
# `make run`: a local mosquitto, the daemon on the camera (else the bundled sample video of a
# board being written on), and a subscriber in this terminal showing the pages as they arrive.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STATE=${STATE:-state/run}
mkdir -p "$STATE"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if "$VENV/bin/python" -c 'import socket,sys; sys.exit(socket.socket().connect_ex(("127.0.0.1",1883)))' 2>/dev/null; then
  PORT=1883
  echo "== broker: the MQTT broker already listening on 127.0.0.1:1883"
else
  MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  [ -x "$MOSQUITTO" ] || { echo "mosquitto is not installed: sudo apt install mosquitto"; exit 1; }
  PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$STATE/broker"
  # `user`: started as root, mosquitto would drop to its own user and could not save its state here.
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nuser %s\n' \
    "$PORT" "$(pwd)/$STATE/broker" "$(id -un)" > "$STATE/broker/mosquitto.conf"
  "$MOSQUITTO" -c "$STATE/broker/mosquitto.conf" > "$STATE/broker/mosquitto.log" 2>&1 &
  pids+=($!)
  echo "== broker: mosquitto on 127.0.0.1:$PORT (log $STATE/broker/mosquitto.log)"
  sleep 0.5
fi

echo "== subscriber: pages and line events as they arrive (Ctrl-C stops everything)"
# 127.0.0.1, the address the broker listens on: "localhost" may not resolve (no /etc/hosts) or
# resolve to ::1 first.
"$VENV/bin/edge-ocr" watch --host 127.0.0.1 --port "$PORT" &
pids+=($!)
sleep 0.5

echo "== daemon: edge-ocr run --config config/edge-ocr.toml (log $STATE/daemon.log)"
set +e
EDGE_OCR_MQTT_HOST=127.0.0.1 EDGE_OCR_MQTT_PORT=$PORT EDGE_OCR_SERVICE_STATE_DIR=$STATE/daemon \
  "$VENV/bin/edge-ocr" run --config config/edge-ocr.toml > "$STATE/daemon.log" 2>&1
rc=$?
set -e
sleep 1
if [ $rc != 0 ]; then echo "== daemon exited with $rc; last log lines:"; tail -n 15 "$STATE/daemon.log"; exit $rc; fi
echo
echo "== done: the video has ended. The daemon's log is $STATE/daemon.log; its summary:"
summary=$(grep 'event=stopped' "$STATE/daemon.log" | tail -n 1)
echo "$summary"
left=$(sed -nE 's/.* outbox_left=([0-9]+).*/\1/p' <<< "$summary")
if [ "${left:-0}" != 0 ]; then
  echo "== $left messages never reached the broker (they stay in $STATE/daemon's outbox); see the log"
  exit 1
fi
