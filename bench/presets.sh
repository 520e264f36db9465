#!/usr/bin/env bash
# presets.sh — the preset table's speed column: each MinAtar preset trained
# briefly on one game, one at a time, at one thread, and its agent steps per
# second of the training phase (metrics.csv's steps_per_second) printed as a
# Markdown table. Updates run from step 1,000 (agent.min_replay_history), so
# the figure is the steady state of a long run, replay warm-up aside; there
# is no evaluation. Each preset runs 2 iterations and the second's speed is
# reported (the first includes primitive creation and the warm-up).
#
#   bench/presets.sh [--game G] [--steps N] [--threads T] [--presets "dqn der ..."]
#                    [--tessera PATH]
#
#   --game      default breakout
#   --steps     agent steps per iteration (default 10000; the slowest presets
#               take a minute each at that)
#   --threads   run.threads (default 1)
#   --presets   default: every preset configs/<game>/ has
#
# Run it on a machine to itself: steps per second count wall-clock time.
set -euo pipefail
cd "$(dirname "$0")/.."

game=breakout
steps=10000
threads=1
presets=""
tessera=./build/src/cli/tessera
while (($#)); do
  case "$1" in
    --game) game=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    --tessera) tessera=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "presets.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $tessera ]] || { echo "presets.sh: $tessera not found; build first (ninja -C build)" >&2; exit 1; }
[[ -d configs/$game ]] || { echo "presets.sh: no presets for $game (configs/$game)" >&2; exit 1; }
if [[ -z $presets ]]; then
  presets=$(cd "configs/$game" && ls -- *.ini | sed 's/\.ini$//' | tr '\n' ' ')
fi

work=$(mktemp -d /tmp/tessera_presets_XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "| preset | $game steps/s, $threads thread(s) |"
echo "|---|---|"
index=0
for preset in $presets; do
  index=$((index + 1))
  run=$work/$index-$preset
  config=configs/$game/$preset.ini
  [[ -f $config ]] || { echo "presets.sh: no preset $config" >&2; exit 1; }
  if ! OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} "$tessera" train "$config" --quiet \
       --run-dir "$run" --threads "$threads" \
       --set run.iterations=2 --set run.training_steps="$steps" \
       --set agent.min_replay_history=1000 --set run.evaluation_episodes=0 \
       >"$run.log" 2>&1; then
    echo "presets.sh: $preset failed:" >&2
    cat "$run.log" >&2
    exit 1
  fi
  speed=$(awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) col[$i] = i; next}
                   {v = $col["steps_per_second"]} END {printf "%.0f", v}' "$run/metrics.csv")
  echo "| \`$preset\` | $speed |"
done
