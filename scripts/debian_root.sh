# A Debian root made from nothing with mmdebstrap, for the checks that run edge-ocr on a machine
# other than this one: scripts/arm64_check.sh (an arm64 root run under qemu-user) and
# scripts/fresh_root_check.sh (an amd64 root where the README's commands must set everything up).
# Sourced, not run.

# The mirror arguments for mmdebstrap: this machine's own apt sources when they serve SUITE (they
# are how the package registries are reached here, proxies and snapshots included), otherwise
# deb.debian.org. mmdebstrap copies them into the root, so apt inside it reaches the same place.
debian_mirrors() {
  local suite=$1 f found=""
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] || continue
    if grep -Eq "^[[:space:]]*(Suites:|deb[[:space:]]).*[[:space:]]$suite([[:space:]]|$)" "$f"; then
      echo "$f"
      found=1
    fi
  done
  [ -n "$found" ] || echo http://deb.debian.org/debian
}

# debian_root ARCH SUITE DIR VARIANT [PACKAGES]: a new root in DIR (anything there is removed).
# VARIANT is mmdebstrap's: `extract` (unpack only: no maintainer scripts, so a foreign
# architecture needs no binfmt_misc) or `minbase` (Essential + apt, configured: a minimal
# machine). PACKAGES: comma-separated, added to the variant's set.
debian_root() {
  local arch=$1 suite=$2 dir=$3 variant=$4 packages=${5:-} d
  command -v mmdebstrap >/dev/null || { echo "mmdebstrap missing: apt install mmdebstrap"; return 1; }
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  # shellcheck disable=SC2046  # one argument per sources file
  mmdebstrap --quiet --variant="$variant" --architectures="$arch" ${packages:+--include="$packages"} \
    "$suite" "$dir" $(debian_mirrors "$suite")
  # trixie's merged /usr symlinks are made by a maintainer script, which extract mode skips.
  for d in bin sbin lib; do [ -e "$dir/$d" ] || ln -s "usr/$d" "$dir/$d"; done
}
