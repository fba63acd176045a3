# Shared by scripts/build and scripts/test: install what is missing, quietly.
# Sourced, not run. Needs root (or sudo) for apt-get on a fresh Debian machine.

# Debian packages needed to build mtkit and make media.
BUILD_DEBS=(pkg-config libudev-dev xorriso createrepo-c musl-tools)
# The remaster edits the EFI boot image (mtools) and may add an isohybrid MBR (isolinux).
BUILD_DEBS+=(mtools isolinux)
# Extra packages the tests drive for real.
TEST_DEBS=(isolinux syslinux-common syslinux-utils mtools dosfstools e2fsprogs xfsprogs
  reiserfsprogs lvm2 libnbd-bin nbdkit python3-venv util-linux fdisk qemu-utils)

_sudo() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    _sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive _sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# The static musl build embedded in the media (runs on CentOS 6's glibc 2.12).
need_musl_target() {
  if ! rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl >&2 || echo "warning: could not add the musl target" >&2
  fi
}

# A venv with pykickstart (ksvalidator) and pycdlib for the tests.
need_venv() {
  local venv="$1"
  if [ ! -x "$venv/bin/ksvalidator" ] || ! "$venv/bin/python" -c 'import pycdlib' 2>/dev/null; then
    echo "creating Python venv $venv (pykickstart, pycdlib)" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check pykickstart pycdlib >&2
  fi
}
