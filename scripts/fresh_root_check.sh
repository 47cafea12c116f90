#!/usr/bin/env bash
# `make fresh-check` (as root): the README's commands on a Debian 12 machine made from nothing, so
# that a set-up step `make run` or `make test` leaves out fails here and not on a user's machine
# (the machines that run CI keep what earlier work installed, and hide such a step).
#
# - the root: mmdebstrap --variant=minbase, amd64, Debian 12 (bookworm) from this machine's apt
#   sources (scripts/debian_root.sh); /proc, /sys, /dev and a fresh /dev/shm mounted in it
#   (Chromium, multiprocessing) inside a private mount namespace, so they go when this ends;
# - in it: what the README says to install first (its first `sudo apt install` line, read from
#   README.md, nothing more), a fresh `git clone` of this repository's HEAD (committed work only)
#   at /work/edge-ocr and ../shared beside it, read-only, as CI has it;
# - as root there, with none of this machine's pip or proxy settings: `make run` first (on its
#   own it must set up what it needs), bounded by RUN_SECONDS and judged by the text its
#   subscriber printed against samples/board.json; then `make test`, which must pass and skip
#   nothing (a skip there is a missing tool).
# Logs: $OUT/logs/. Exit status non-zero on any failure. About an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/debian_root.sh

OUT=$(realpath -m "${OUT:-build/fresh-root}")
SHARED=$(realpath "${SHARED:-../shared}")
RUN_SECONDS=${RUN_SECONDS:-600}
ROOTFS=$OUT/rootfs
LOGS=$OUT/logs
REPO=/work/edge-ocr

if [ "${1:-}" != --inside ]; then
  [ "$(id -u)" = 0 ] || { echo "make fresh-check: run as root (mmdebstrap, mounts, chroot)"; exit 1; }
  [ -d "$SHARED" ] || { echo "SHARED=$SHARED is not a folder (the tests read ../shared)"; exit 1; }
  rm -rf "$LOGS"
  mkdir -p "$LOGS"
  start=$(date +%s)
  echo "== Debian 12 amd64 root from nothing (minbase) → $ROOTFS (sources: $(debian_mirrors bookworm | xargs))"
  debian_root amd64 bookworm "$ROOTFS" minbase > "$LOGS/mmdebstrap.log" 2>&1 \
    || { tail -n 20 "$LOGS/mmdebstrap.log"; exit 1; }
  echo "   ($(( $(date +%s) - start )) s)"
  echo "== a fresh clone of HEAD ($(git rev-parse --short HEAD)) → $REPO, $SHARED → /work/shared (read-only)"
  git clone -q --no-local "$(pwd)" "$ROOTFS$REPO"
  mkdir -p "$ROOTFS/work/shared"
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOTFS/etc/hosts"  # as the installer writes it
  # This network's TLS trust, which a new machine here has too (registries are reached through a
  # proxy with its own CA): the local CA certificates, kept by ca-certificates when it installs,
  # and the bundle the variables passed in below name.
  mkdir -p "$ROOTFS/usr/local/share/ca-certificates" "$ROOTFS/etc/ssl/certs"
  [ -d /usr/local/share/ca-certificates ] && cp -a /usr/local/share/ca-certificates/. "$ROOTFS/usr/local/share/ca-certificates/"
  [ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/"
  OUT=$OUT SHARED=$SHARED RUN_SECONDS=$RUN_SECONDS exec unshare --mount --propagation private "$0" --inside
fi

# ---- inside a private mount namespace
mount -t proc proc "$ROOTFS/proc"
mount -t sysfs -o ro sysfs "$ROOTFS/sys" 2>/dev/null || mount --rbind -o ro /sys "$ROOTFS/sys"
mount --bind /dev "$ROOTFS/dev"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$ROOTFS/dev/shm"
mount --bind "$SHARED" "$ROOTFS/work/shared"
mount -o remount,bind,ro "$ROOTFS/work/shared"

# A new machine's environment: none of this machine's pip configuration (local wheel folders and
# indexes, constraints); only what describes the machine and its network, not a set-up step: the
# variables that name the CA bundle, the CPU notes for OpenBLAS, and CI=true as CI has.
machine_env=()
for v in PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
  [ -n "${!v:-}" ] && machine_env+=("$v=${!v}")
done
in_root() {
  env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI=true DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${machine_env[@]}" \
    chroot "$ROOTFS" bash -c "$1"
}
phase() {  # phase NAME COMMAND: run COMMAND in the root, log it, print its wall time
  local name=$1 t0 rc
  t0=$(date +%s)
  echo "== $name"
  set +e
  in_root "$2" > "$LOGS/$name.log" 2>&1
  rc=$?
  set -e
  echo "   rc=$rc, $(( $(date +%s) - t0 )) s, log $LOGS/$name.log"
  if [ $rc != 0 ]; then tail -n 30 "$LOGS/$name.log"; fi
  return $rc
}

first=$(grep -m1 -E '^sudo apt install ' "$ROOTFS$REPO/README.md" | sed -E 's/^sudo apt install ([^#]*).*/\1/' | xargs)
[ -n "$first" ] || { echo "README.md has no 'sudo apt install …' line saying what to install first"; exit 1; }
phase apt-first "apt-get update -qq && apt-get install -y -qq $first"

phase make-run "cd $REPO && timeout $RUN_SECONDS make run"
python3 - "$LOGS/make-run.log" "$ROOTFS$REPO/samples/board.json" <<'PY'
# The subscriber's last page must hold every line the video writes (samples/board.json), each
# read closely enough (similarity ≥ 0.8, spaces ignored): text reached MQTT and came back.
import difflib, json, re, sys
log = open(sys.argv[1], encoding="utf-8").read()
truth = [line["text"] for line in json.load(open(sys.argv[2], encoding="utf-8"))["lines"]]
pages = log.split("\n[page ")[1:]
assert "== done: the video has ended" in log, "make run did not reach the end of the video"
assert pages, "make run's subscriber printed no page"
shown = [m.group(1) for m in re.finditer(r"^  \d\.\d\d  (.*)$", pages[-1].split("\n\n")[0], re.M)]
squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
ratios = [max((difflib.SequenceMatcher(None, squash(t), squash(s)).ratio() for s in shown), default=0) for t in truth]
for t, r in zip(truth, ratios):
    print(f"   {'ok ' if r >= 0.8 else 'BAD'} {r:.2f}  {t}")
assert all(r >= 0.8 for r in ratios), f"the last page ({len(shown)} lines) misses lines of the board"
print(f"   make run: {len(pages)} pages published, the last holds all {len(truth)} lines")
PY

# -k: past a failing part, the others (and their set-up) still run and show.
phase make-test "cd $REPO && make -k test" && rc=0 || rc=$?
grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$LOGS/make-test.log" || true
grep -E '^(FAILED|ERROR) tests/|^make: \*\*\*' "$LOGS/make-test.log" || true
if grep -qE '^=+ .*skipped.* in [0-9.]+s' "$LOGS/make-test.log"; then
  echo "make test skipped tests on a fresh machine (a tool or file it did not install):"
  grep -E '^SKIPPED' "$LOGS/make-test.log"
  exit 1
fi
[ $rc = 0 ] || exit $rc
echo "== fresh-check passed: make run and make test on a Debian 12 root made from nothing"
