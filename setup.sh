#!/usr/bin/env bash
# setup.sh — one command from a fresh Debian 12 machine to a working tessera.
#
#   ./setup.sh run    install what is missing, build, run the main job
#   ./setup.sh test   install what is missing, build, run the whole test suite
#                     (release build, then AddressSanitizer + UBSan build)
#
# Packages come from Debian. Run as root and missing ones are installed with
# apt-get; otherwise the exact apt-get line is printed and the script stops.
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:-}
case "$mode" in
  run|test) ;;
  *) echo "usage: ./setup.sh run|test" >&2; exit 2 ;;
esac

# gnuplot-nox draws `tessera report --plots` figures (SVG, no X11).
packages=(build-essential meson ninja-build pkg-config libdnnl-dev libhdf5-dev hdf5-tools
          libcriterion-dev libomp-dev libinih-dev liblapacke-dev python3-h5py gnuplot-nox
          openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: missing Debian packages; run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

jobs=$(nproc)
build() { # build DIR [meson options...]
  local dir=$1; shift
  if [[ ! -f $dir/build.ninja ]]; then meson setup "$dir" "$@" >/dev/null; fi
  ninja -C "$dir" -j "$jobs"
}

build build --buildtype=release

if [[ $mode == run ]]; then
  # The main job: a short run of the MinAtar paper's DQN on MinAtar Breakout
  # (2 iterations of 25k agent steps). tessera train ends by printing where
  # the run's config, metrics and parameters are.
  exec ./build/src/cli/tessera train configs/breakout/dqn.ini --quiet \
    --set run.iterations=2 --set run.training_steps=25000
fi

# Runs one suite and prints a closing "NAME: N passed, N failed" line.
suite() { # suite NAME BUILD_DIR [meson test options...]
  local name=$1 dir=$2; shift 2
  local log status=0
  log=$(mktemp)
  meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "$@" | tee "$log" || status=$?
  local ok fail
  ok=$(awk '/^Ok:/ {print $2}' "$log")
  fail=$(awk '/^(Fail|Timeout|Unexpected Pass):/ {n += $NF} END {print n + 0}' "$log")
  rm -f "$log"
  echo "${name}: ${ok:-0} passed, ${fail} failed"
  return "$status"
}

# Release suite, then the same suite under AddressSanitizer + UBSan.
suite release build
build build-sanitize --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
suite sanitizers build-sanitize --timeout-multiplier 4
