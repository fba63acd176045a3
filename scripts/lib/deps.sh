# Shared by scripts/build and scripts/test: install what is missing, quietly.
# Sourced, not run. Needs root (or sudo) for apt-get on a fresh Debian machine.

# Debian packages needed to build mtkit and make media. cargo links through `cc` (gcc,
# with libc6-dev: --no-install-recommends leaves it out); ring compiles C with gcc and
# x86_64-linux-musl-gcc (musl-tools); curl and ca-certificates fetch rustup and pip packages.
BUILD_DEBS=(pkg-config libudev-dev xorriso createrepo-c musl-tools gcc libc6-dev curl ca-certificates)
# The remaster edits the EFI boot image (mtools) and may add an isohybrid MBR (isolinux).
BUILD_DEBS+=(mtools isolinux)
# Extra packages the tests drive for real.
TEST_DEBS=(isolinux syslinux-common syslinux-utils mtools dosfstools e2fsprogs xfsprogs
  reiserfsprogs lvm2 libnbd-bin nbdkit python3-venv util-linux fdisk qemu-utils)
# losetup, mount, swapon (mount); chattr (e2fsprogs); logger (bsdutils); perl (perl-base).
TEST_DEBS+=(mount bsdutils perl-base)
# systemd-analyze verify parses the rendered writer unit (systemd-escape names its mounts).
TEST_DEBS+=(systemd)
# seal/firstboot tests: ssh-keygen makes host keys, openssl checks the writer certificates.
TEST_DEBS+=(openssh-client openssl)
# rpmbuild (rpm) makes the stand-in RPMs of the offline-repo tests; ssh-keygen also reads
# the authorized_keys the kickstart writes; groff renders the man pages.
TEST_DEBS+=(rpm groff-base)
# apply's --dry-run diff is checked with the tools that apply diffs.
TEST_DEBS+=(patch git)
# fincore counts a file's bytes in the page cache: the writer's read-ahead is checked with it.
TEST_DEBS+=(util-linux-extra)

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

# Rust from rustup: edition 2024 and let-chains need rustc 1.88 or newer, which Debian 12's
# own cargo is not. Installed for this user when there is none.
RUST_MIN=1.88
need_rust() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "installing Rust with rustup (https://rustup.rs) into $HOME/.cargo" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y -q --profile minimal >&2
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  local have
  have="$(rustc --version | awk '{print $2}')"
  if [ "$(printf '%s\n%s\n' "$RUST_MIN" "$have" | sort -V | head -1)" != "$RUST_MIN" ]; then
    if command -v rustup >/dev/null 2>&1; then
      echo "rustc $have is older than $RUST_MIN: rustup update stable" >&2
      rustup update stable >&2
    else
      echo "error: rustc $have is older than $RUST_MIN; install Rust with rustup (https://rustup.rs)" >&2
      return 1
    fi
  fi
}

# rustfmt and clippy for scripts/test (rustup's minimal profile has neither).
need_rust_lints() {
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy >&2
  fi
}

# The static musl build embedded in the media (runs on CentOS 6's glibc 2.12).
need_musl_target() {
  if ! rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl >&2 || echo "warning: could not add the musl target" >&2
  fi
}

# A venv with pykickstart (ksvalidator), pycdlib and python-hcl2 (the Packer template
# test parses HCL2 with it) for the tests.
need_venv() {
  local venv="$1"
  if [ ! -x "$venv/bin/ksvalidator" ] || ! "$venv/bin/python" -c 'import pycdlib, hcl2' 2>/dev/null; then
    echo "creating Python venv $venv (pykickstart, pycdlib, python-hcl2)" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check pykickstart pycdlib python-hcl2 >&2
  fi
}

# The end-to-end suite (scripts/test-e2e, scripts/e2e-assets): depmod (kmod) for the unpacked
# kernel's modules.dep, cpio for the initramfs, strip (binutils) for the binary in it. QEMU,
# its firmware, the kernel and busybox are unpacked from their .debs, not installed.
E2E_DEBS=(kmod cpio gzip binutils)
# The media boots make the fixture ISO (xorriso, isolinux, mtools, dosfstools) and remaster it.
E2E_DEBS+=(xorriso isolinux syslinux-common mtools dosfstools)
