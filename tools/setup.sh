#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and builds freescale into build/.
# Installs only the Debian packages that are missing, then configures and
# builds. Safe to run again: it only redoes what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake pkg-config gcc make clang libclang-rt-14-dev
          libopenmpi-dev openmpi-bin libopenblas-dev libjansson-dev
          libfftw3-dev libyaml-dev libpng-dev libhdf5-openmpi-dev hdf5-tools
          libpcre2-dev libicu-dev zlib1g-dev
          slurmctld slurmd slurm-client munge)   # Slurm: tests/cli_slurm.sh starts its own
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
