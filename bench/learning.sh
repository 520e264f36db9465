#!/usr/bin/env bash
# learning.sh — the learning benchmark: one preset on every MinAtar game (or
# the games given) for several seeds, then a Markdown table of final returns.
#
#   bench/learning.sh [--preset dqn] [--seeds "0 1 2"] [--games "asterix breakout ..."]
#                     [--iterations N] [--training-steps N] [--jobs J]
#                     [--out DIR] [--tessera PATH] [--set section.key=value ...]
#                     [--summary-only]
#
#   --preset          configs/<game>/<preset>.ini (dqn, dqn_softmoe, rainbow, der, ...)
#   --seeds           run.seed values (default "0 1 2")
#   --games           default: the five MinAtar games
#   --iterations, --training-steps
#                     the budget: run.iterations x run.training_steps agent steps
#                     (default: the preset's own, 50 x 100k = 5M for dqn)
#   --jobs            runs at once, one thread each (default: the number of cores)
#   --out             where the run directories and summary.md go
#                     (default runs/learning-<preset>-<date>)
#   --set             any other override, passed to every run
#   --summary-only    run nothing: write summary.md from what --out holds
#                     (runs still going show their last finished iteration)
#
# A run that already finished is not run again, and an interrupted one resumes
# from its newest checkpoint (tessera train --resume), so an interrupted
# benchmark continues by running the same command. The table reports,
# per game, the final iteration's evaluation return for each seed, their mean and
# standard deviation, the mean training return of the last iteration, the
# wall-clock hours per run, and, for dqn, the MinAtar paper's DQN return at 5M
# frames (read off its figure).
set -euo pipefail
cd "$(dirname "$0")/.."

preset=dqn
seeds="0 1 2"
games="asterix breakout freeway seaquest space_invaders"
iterations=""
training_steps=""
jobs=$(nproc)
out=""
tessera=./build/src/cli/tessera
extra=()
summary_only=0
while (($#)); do
  case "$1" in
    --preset) preset=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --games) games=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --training-steps) training_steps=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tessera) tessera=$2; shift 2 ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    --summary-only) summary_only=1; shift ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "learning.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $tessera ]] || { echo "learning.sh: $tessera not found; build first (./setup.sh run or ninja -C build)" >&2; exit 1; }
out=${out:-runs/learning-$preset-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

budget=()
[[ -n $iterations ]] && budget+=(--set "run.iterations=$iterations")
[[ -n $training_steps ]] && budget+=(--set "run.training_steps=$training_steps")

for game in $games; do
  [[ -f configs/$game/$preset.ini ]] || { echo "learning.sh: no preset configs/$game/$preset.ini" >&2; exit 1; }
done
run_one() { # run_one GAME SEED
  local game=$1 seed=$2 dir=$out/$1-s$2 args=()
  mapfile -t args < <(grep -v "^$" "$out/overrides.txt")
  if [[ -f $dir/.complete ]]; then echo "$game seed $seed: done already"; return 0; fi
  local command=(train "configs/$game/$preset.ini" --seed "$seed" --threads 1 --run-dir "$dir"
                 --quiet "${args[@]}")
  [[ -f $dir/config.ini ]] && command=(train --resume "$dir" --threads 1 --quiet)
  if "$tessera" "${command[@]}" >>"$out/$game-s$seed.log" 2>&1; then
    touch "$dir/.complete"
    echo "$game seed $seed: $(grep '^iteration' "$out/$game-s$seed.log" | tail -n 1)"
  else
    echo "$game seed $seed: FAILED (see $out/$game-s$seed.log)"
  fi
}
run_all() {
  # One line per run: game seed, seed-major, so that a benchmark cut short has
  # every game's first seed before any game's second.
  local list=$out/runs.txt
  : >"$list"
  for seed in $seeds; do
    for game in $games; do echo "$game $seed" >>"$list"; done
  done
  export out preset tessera
  export -f run_one
  # Arrays do not cross `export`: pass the overrides through a file.
  printf '%s\n' "${budget[@]}" "${extra[@]}" >"$out/overrides.txt"
  echo "learning.sh: $(wc -l <"$list") runs of $preset, $jobs at a time, in $out"
  xargs -P "$jobs" -L 1 bash -c 'run_one "$0" "$1"' <"$list"
}
((summary_only)) || run_all

# MinAtar paper (Young & Tian 2019), DQN at 5M frames: read off the
# learning-curve figure of MinAtar's README (the moving average of the last
# 100 training episodes, 30 seeds), so about ±1.
paper() {
  case "$1" in
    asterix) echo 17 ;; breakout) echo 10 ;; freeway) echo 50 ;;
    seaquest) echo 20 ;; space_invaders) echo 43 ;; *) echo "" ;;
  esac
}

# One run's last metrics row as "iteration eval_return train_return hours",
# columns found by name; nothing when the run has no finished iteration.
last_row() {
  awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) col[$i] = i; next}
    {it = $col["iteration"]; ev = $col["eval_return"]; tr = $col["train_return"]
     if ("seconds" in col) h += $col["seconds"] / 3600; else h = -1}
    END {if (NR > 1) printf "%s %s %s %s\n", it, (ev == "" ? "-" : ev), (tr == "" ? "-" : tr), h}' "$1"
}

summary=$out/summary.md
# The budget as the runs resolved it (their saved config.ini).
run_key() {
  local config
  config=$(ls "$out"/*/config.ini 2>/dev/null | head -n 1)
  [[ -n $config ]] && awk -F' *= *' -v k="$1" '/^\[/ {sec = $0} sec == "[run]" && $1 == k {print $2}' "$config"
}
{
  echo "# $preset: final returns"
  echo
  echo "Budget: $(run_key iterations) iterations of $(run_key training_steps) agent steps; seeds: $seeds."
  echo "Per seed, the evaluation return of the run's last iteration (run.evaluation_episodes"
  echo "episodes with agent.epsilon_eval); a run still going shows its iteration as \"(it. k)\"."
  echo "mean ± sd, train return (mean training-episode return of the last iteration, with"
  echo "agent.epsilon_train: the paper's curves are training returns) and hours (wall-clock time"
  echo "per run, the sum of metrics.csv's seconds) cover the finished runs only."
  echo
  header="| game |"; rule="|---|"
  for seed in $seeds; do header+=" seed $seed |"; rule+="---|"; done
  header+=" mean ± sd | train return | hours per run |"; rule+="---|---|---|"
  [[ $preset == dqn ]] && { header+=" MinAtar paper DQN |"; rule+="---|"; }
  echo "$header"; echo "$rule"
  for game in $games; do
    row="| $game |"; values=(); trains=(); hours=()
    for seed in $seeds; do
      dir=$out/$game-s$seed
      read -r it ev tr h < <([[ -f $dir/metrics.csv ]] && last_row "$dir/metrics.csv" || true) || true
      if [[ -z ${it:-} ]]; then
        row+=" - |"
      elif [[ -f $dir/.complete ]]; then
        row+=" $ev |"; [[ $ev != - ]] && values+=("$ev"); [[ $tr != - ]] && trains+=("$tr")
        [[ $h != -1 ]] && hours+=("$h")
      else
        row+=" $ev (it. $it) |"
      fi
      it=""
    done
    stats=$(printf '%s\n' "${values[@]:-}" | awk 'NF {n++; s+=$1; q+=$1*$1}
      END {if (n == 0) print "-"; else if (n == 1) printf "%.2f (1 run)", s;
      else {m=s/n; v=(q-n*m*m)/(n-1); if (v<0) v=0; printf "%.2f ± %.2f", m, sqrt(v)}}')
    mean() { awk -v f="$1" 'NF {n++; s+=$1} END {if (n) printf f, s/n; else print "-"}'; }
    train=$(printf '%s\n' "${trains[@]:-}" | mean "%.2f")
    hour=$(printf '%s\n' "${hours[@]:-}" | mean "%.2f")
    row+=" $stats | $train | $hour |"
    [[ $preset == dqn ]] && row+=" ≈$(paper "$game") |"
    echo "$row"
  done
} >"$summary"
cat "$summary"
echo
echo "learning.sh: table in $summary; per-run logs, metrics.csv and checkpoints under $out/"
