#!/usr/bin/env bash
# learning.sh — the learning benchmark: one preset on every MinAtar game (or
# the games given) for several seeds, then a Markdown table of final returns.
#
#   bench/learning.sh [--preset dqn] [--seeds "0 1 2"] [--games "asterix breakout ..."]
#                     [--iterations N] [--training-steps N] [--jobs J]
#                     [--out DIR] [--tessera PATH] [--set section.key=value ...]
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
#
# A run that already finished is not run again, and an interrupted one resumes
# from its newest checkpoint (tessera train --resume), so an interrupted
# benchmark continues by running the same command. The table reports,
# per game, the final iteration's evaluation return for each seed, their mean and
# standard deviation, the mean training return of the last iteration, and, for
# dqn, the MinAtar paper's DQN return at 5M frames (read off its figure).
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
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "learning.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $tessera ]] || { echo "learning.sh: $tessera not found; build first (./setup.sh run or ninja -C build)" >&2; exit 1; }
out=${out:-runs/learning-$preset-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

budget=()
[[ -n $iterations ]] && budget+=(--set "run.iterations=$iterations")
[[ -n $training_steps ]] && budget+=(--set "run.training_steps=$training_steps")

# One line per run: game seed.
list=$out/runs.txt
: >"$list"
for game in $games; do
  config=configs/$game/$preset.ini
  [[ -f $config ]] || { echo "learning.sh: no preset $config" >&2; exit 1; }
  for seed in $seeds; do echo "$game $seed" >>"$list"; done
done

export out preset tessera
# Arrays do not cross `export`: pass the overrides through a file.
printf '%s\n' "${budget[@]}" "${extra[@]}" >"$out/overrides.txt"
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
export -f run_one
echo "learning.sh: $(wc -l <"$list") runs of $preset, $jobs at a time, in $out"
xargs -P "$jobs" -L 1 bash -c 'run_one "$0" "$1"' <"$list"

# MinAtar paper, DQN at 5M frames (specs/minatar.md §6, read off the figure).
paper() {
  case "$1" in
    asterix) echo 17 ;; breakout) echo 10 ;; freeway) echo 50 ;;
    seaquest) echo 20 ;; space_invaders) echo 43 ;; *) echo "" ;;
  esac
}

summary=$out/summary.md
{
  echo "# $preset: final returns"
  echo
  echo "Budget: ${iterations:-preset} iterations x ${training_steps:-preset} agent steps; seeds: $seeds."
  echo "Evaluation return of the final iteration per seed (run.evaluation_episodes episodes with"
  echo "agent.epsilon_eval), their mean ± standard deviation, and the last iteration's mean training return."
  echo
  header="| game |"; rule="|---|"
  for seed in $seeds; do header+=" seed $seed |"; rule+="---|"; done
  header+=" mean ± sd | train return |"; rule+="---|---|"
  [[ $preset == dqn ]] && { header+=" MinAtar paper DQN |"; rule+="---|"; }
  echo "$header"; echo "$rule"
  for game in $games; do
    row="| $game |"; values=(); trains=()
    for seed in $seeds; do
      csv=$out/$game-s$seed/metrics.csv
      if [[ -f $csv ]] && (($(wc -l <"$csv") > 1)); then
        v=$(tail -n 1 "$csv" | awk -F, '{print $11}')
        t=$(tail -n 1 "$csv" | awk -F, '{print $5}')
        row+=" ${v:--} |"; [[ -n $v ]] && values+=("$v"); [[ -n $t ]] && trains+=("$t")
      else
        row+=" - |"
      fi
    done
    stats=$(printf '%s\n' "${values[@]:-}" | awk 'NF {n++; s+=$1; q+=$1*$1}
      END {if (n == 0) print "-"; else {m=s/n; v=(n>1)?(q-n*m*m)/(n-1):0; if (v<0) v=0;
      printf "%.2f ± %.2f", m, sqrt(v)}}')
    train=$(printf '%s\n' "${trains[@]:-}" | awk 'NF {n++; s+=$1} END {if (n) printf "%.2f", s/n; else print "-"}')
    row+=" $stats | $train |"
    [[ $preset == dqn ]] && row+=" ≈$(paper "$game") |"
    echo "$row"
  done
} >"$summary"
cat "$summary"
echo
echo "learning.sh: table in $summary; per-run logs, metrics.csv and checkpoints under $out/"
