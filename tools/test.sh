#!/usr/bin/env bash
# Builds freescale on a fresh Debian 12 machine (tools/setup.sh) and runs every
# test: unit tests, the op harness, the 1..4-rank MPI tests and the fuzzers
# (FS_FUZZ_SECONDS each, default 60). ctest's last line counts the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
ctest --test-dir build --output-on-failure "$@"
