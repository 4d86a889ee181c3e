#!/usr/bin/env bash
# Debian packages the tests and benchmarks need: Chromium (dashboard browser test, driven by
# Playwright with executable_path=/usr/bin/chromium; never `playwright install`) and Fashion-MNIST
# (benchmarks). Installs only what is missing; needs root (or sudo) and apt-get.
set -euo pipefail
want=()
[ -x /usr/bin/chromium ] || want+=(chromium)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || want+=(dataset-fashion-mnist)
[ ${#want[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "install-system-deps: apt-get not found; please install: ${want[*]}" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages: ${want[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
