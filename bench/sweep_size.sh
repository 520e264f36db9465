#!/usr/bin/env bash
# sweep_size.sh — what a sweep costs on this machine. Each distinct
# configuration of a sweep file (its variants x axis values) is trained
# briefly on one game, seed 0, at the sweep's thread count, one at a time;
# its speed in agent steps per CPU-second (the run's process's user + system
# time, which `tessera sweep` records in each run's train.log: unlike steps
# per wall-clock second it holds on a machine shared with other jobs) then
# sizes every run of the sweep:
#
#   CPU-hours = sum over runs of run.iterations x run.training_steps
#               / (steps per CPU-second) / 3600
#
# Evaluation episodes and the replay warm-up (no updates) are not told
# apart from training steps, and every game is assumed as fast as the
# measured one.
#
#   bench/sweep_size.sh SWEEP [--steps N] [--game G] [--tessera PATH]
#
#   --steps    agent steps of the measuring run (default 20000: 2 iterations,
#              updates from step 1,000, no evaluation)
#   --game     the game measured (default breakout)
#   --tessera  default ./build/src/cli/tessera
#
# The measuring runs go to a temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

sweep=""
steps=20000
game=breakout
tessera=./build/src/cli/tessera
while (($#)); do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --game) game=$2; shift 2 ;;
    --tessera) tessera=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "sweep_size.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) sweep=$1; shift ;;
  esac
done
[[ -n $sweep ]] || { echo "usage: bench/sweep_size.sh SWEEP [--steps N] [--game G]" >&2; exit 2; }
[[ -x $tessera ]] || { echo "sweep_size.sh: $tessera not found; build first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every run of the sweep with its budget: "start NAME  (I x S steps)".
"$tessera" sweep "$sweep" --out "$tmp/plan" --dry-run > "$tmp/plan.txt"
threads=$(sed -n 's/^threads *= *\([0-9]*\).*/\1/p' "$sweep" | head -1)
threads=${threads:-1}

# The measuring sweep: the same file on one game, one seed, a short budget
# (the base made absolute, its own out dropped, a [set] section appended).
dir=$(cd "$(dirname "$sweep")" && pwd)
sed -e "s|^base *= *\([^/ ].*\)$|base = $dir/\1|" \
    -e "s|^games *=.*|games = $game|" \
    -e "s|^seeds *=.*|seeds = 1|" \
    -e "/^out *=/d" "$sweep" > "$tmp/measure.ini"
cat >> "$tmp/measure.ini" <<EOF

[set]
run.iterations = 2
run.training_steps = $((steps / 2))
run.evaluation_episodes = 0
run.checkpoint_every = 0
run.checkpoint_replay = false
agent.min_replay_history = 1000
EOF
echo "measuring the configurations of $(grep -c '^start' "$tmp/plan.txt") runs: $steps steps each on $game, $threads thread(s), one at a time" >&2
"$tessera" sweep "$tmp/measure.ini" --out "$tmp/measure" --jobs 1 > "$tmp/measure.txt" || {
  cat "$tmp/measure.txt" >&2; exit 1; }

# Agent steps per CPU-second of each configuration (the run's name without
# game and seed): the last metrics row's agent_steps over the CPU seconds of
# the run's log footer.
: > "$tmp/speed.txt"
while IFS= read -r csv; do
  run=${csv%/metrics.csv}
  config=${run#"$tmp/measure/"}
  config=${config#*/}
  config=${config%seed=0}
  config=${config%/}
  config=${config:-(base)}
  steps_done=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "agent_steps") c = i; next }
                        { v = $c } END { print v }' "$csv")
  cpu=$(sed -n 's/^# tessera sweep: .* ended (finished) after .* s, \([0-9.]*\) s of CPU$/\1/p' \
        "$run/train.log" | tail -1)
  echo "$config $(awk -v s="$steps_done" -v c="$cpu" 'BEGIN { print s / c }')" >> "$tmp/speed.txt"
done < <(find "$tmp/measure" -name metrics.csv | sort)

awk -v threads="$threads" -v cores="$(nproc)" '
  FNR == NR { speed[$1] = $2; next }
  /^(start|resume|skip) / {
    name = $2; config = name; sub(/^[^\/]*\//, "", config); sub(/\/?seed=[0-9]+$/, "", config)
    if (config == "") config = "(base)"
    budget = $3; gsub(/[()]/, "", budget)
    steps = budget * $5
    if (!(config in runs)) order[++n] = config
    runs[config]++; hours[config] += steps / speed[config] / 3600
    total_runs++; total += steps / speed[config] / 3600
  }
  END {
    printf "%-40s %12s %6s %10s\n", "configuration", "steps/CPU-s", "runs", "CPU-hours"
    for (i = 1; i <= n; i++) {
      c = order[i]
      printf "%-40s %12.0f %6d %10.1f\n", c, speed[c], runs[c], hours[c]
    }
    jobs = int(cores / threads); if (jobs < 1) jobs = 1
    printf "%-40s %12s %6d %10.1f  (%.0f h on this machine at %d runs at once)\n", "total", "",
           total_runs, total, total / (jobs * threads), jobs
  }' "$tmp/speed.txt" "$tmp/plan.txt"
