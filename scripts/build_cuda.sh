#!/usr/bin/env bash
# Builds synthdeid with the CUDA path (candle's `cuda` feature) on a Debian 12 machine with no CUDA
# installed: nvcc 11.8 comes from Debian's non-free `nvidia-cuda-toolkit` (about 1.6 GB). No GPU is
# needed to build; the binary uses the first CUDA device when one is present at run time
# (`SYNTHDEID_DEVICE=cpu` forces the CPU).
#
#     sudo bash scripts/build_cuda.sh            # installs nvcc if missing, then builds
#
# CUDA_COMPUTE_CAP: the kernels' PTX target (default 80, Ampere; PTX runs on later GPUs, e.g.
# an H100/H200, through the driver's JIT). nvcc 11.8 rejects 90 (candle asks for `compute_90a`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null; then
  echo 'Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > /etc/apt/sources.list.d/synthdeid-nonfree.sources
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nvidia-cuda-toolkit
fi
nvcc --version | tail -1
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda} cargo build --release --locked -p synthdeid --features cuda
echo "built: ${CARGO_TARGET_DIR:-target/cuda}/release/synthdeid"
