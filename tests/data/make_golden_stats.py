#!/usr/bin/env python3
"""make_golden_stats.py - the golden numbers of tests/test_stats.c.

Computes, independently of tessera's C code and with exact rational
arithmetic (the standard library's fractions; no numpy or scipy needed), the
aggregate metrics of rliable (components.md section 1.11) on a fixed 4 runs x
3 tasks score matrix, and the EXACT distribution of each metric under
rliable's stratified bootstrap: every task's 4 runs are resampled with
replacement, independently of the other tasks. Each task has 4^4 = 256
equally likely ordered resamples, i.e. 35 multisets with multinomial
weights, so the joint distribution has 35^3 = 42,875 atoms out of
256^3 = 16,777,216 equally likely outcomes, all enumerated.

rliable's definitions, written out here rather than imported:
  mean     = mean over tasks of the per-task mean
  median   = median over tasks of the per-task mean
  IQM      = scipy.stats.trim_mean(flattened, 0.25): with n values sorted,
             lowercut = floor(0.25 n), the mean of sorted[lowercut : n - lowercut]
  opt. gap = 1 - mean(min(score, 1)) over the flattened scores (gamma = 1)
  score distribution at tau = np.mean(flattened > tau) (the performance
             profile of create_performance_profile), at tau = 0.4 and 0.9
and the percentile interval is np.percentile(bootstrap values, [2.5, 97.5]).

Also the probability of improvement of this matrix (X) over a second one (Y,
with ties against X in every task): per task the Mann-Whitney U statistic
over n_x n_y (ties count 1/2), averaged over tasks; its bootstrap resamples
X's and Y's runs independently within each task (rliable's
StratifiedIndependentBootstrap), 256^6 equally likely outcomes, whose exact
distribution is the convolution of the three per-task ones.

A bootstrap of R = 50,000 resamples estimates the exact quantile q(p) =
min{x : F(x) >= p} with the order statistics at positions p (R - 1) and
p (R - 1) + 1. The fraction of resamples at or below any x is binomial with
standard deviation s = sqrt(p (1 - p) / R) = 0.000698 at p = 0.025, so a
correct implementation lands, except for about one seed in a million, within
[q(p - 5 s), q(p + 5 s)]. Those bounds are printed for the test.

With --task-bootstrap it prints instead the same numbers under rliable's
task_bootstrap (every aggregate and the score distribution; not P(X > Y),
which rliable resamples over runs only): each resample first draws the 3
tasks with replacement, 3^3 = 27 equally likely ordered draws, then each
drawn task's runs as above. The metrics do not depend on the order of the
tasks, so the 27 draws are taken as the 10 multisets of tasks with their
multinomial weights: 10 x 35^3 = 428,750 atoms out of 27 x 256^3 outcomes.
About ten times as slow as the default run.

Run: python3 tests/data/make_golden_stats.py [--task-bootstrap]
"""
import sys
from fractions import Fraction
from itertools import combinations_with_replacement, product
from math import factorial, sqrt

# scores[task][run]: the matrix in tests/test_stats.c (golden_scores).
SCORES = [
    ["0.12", "0.45", "0.31", "0.88"],
    ["1.20", "0.95", "0.60", "1.45"],
    ["0.05", "0.22", "0.70", "0.40"],
]
# scores_y[task][run]: a second matrix for the probability of improvement of
# SCORES over it (golden_scores_y), with ties against SCORES in every task.
SCORES_Y = [
    ["0.30", "0.45", "0.10", "0.50"],
    ["1.00", "0.95", "1.30", "0.80"],
    ["0.40", "0.15", "0.05", "0.60"],
]
# thresholds of the score distribution (rliable's performance profile)
PROFILE_TAUS = ["0.4", "0.9"]
REPS = 50_000
SIGMAS = 5


def trim_mean(values, proportion):
    v = sorted(values)
    n = len(v)
    lowercut = int(proportion * n)  # floor, as scipy
    kept = v[lowercut : n - lowercut]
    return sum(kept, Fraction(0)) / len(kept)


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def metrics(tasks):
    task_means = [sum(t, Fraction(0)) / len(t) for t in tasks]
    flat = [x for t in tasks for x in t]
    return {
        "mean": sum(task_means, Fraction(0)) / len(task_means),
        "median": median(task_means),
        "iqm": trim_mean(flat, Fraction(1, 4)),
        "optimality_gap": 1 - sum((min(x, Fraction(1)) for x in flat), Fraction(0)) / len(flat),
        # the score distribution (performance profile) at two thresholds:
        # np.mean(flat > tau)
        **{f"score_distribution_{tau}": Fraction(sum(x > Fraction(tau) for x in flat), len(flat))
           for tau in PROFILE_TAUS},
    }


def improvement(xs, ys):
    """Mann-Whitney U / (n_x n_y) of one task: P(X > Y), ties count 1/2."""
    u = sum((Fraction(1) if x > y else Fraction(1, 2) if x == y else Fraction(0))
            for x in xs for y in ys)
    return u / (len(xs) * len(ys))


def resamples(runs):
    """(multiset of runs, number of ordered draws giving it) for one task."""
    n = len(runs)
    out = []
    for combo in combinations_with_replacement(range(n), n):
        weight = factorial(n)
        for i in range(n):
            weight //= factorial(combo.count(i))
        out.append(([runs[i] for i in combo], weight))
    return out


def quantile(dist, total, p):
    """min{x : F(x) >= p} of a discrete distribution {x: weight}."""
    acc = 0
    for x in sorted(dist):
        acc += dist[x]
        if Fraction(acc, total) >= p:
            return x
    return max(dist)


def task_draws(num_tasks, task_bootstrap):
    """(tuple of task indices, number of ordered task draws giving it)."""
    if not task_bootstrap:
        return [(tuple(range(num_tasks)), 1)]
    out = []
    for combo in combinations_with_replacement(range(num_tasks), num_tasks):
        weight = factorial(num_tasks)
        for i in range(num_tasks):
            weight //= factorial(combo.count(i))
        out.append((combo, weight))
    return out


def main():
    task_bootstrap = "--task-bootstrap" in sys.argv[1:]
    tasks = [[Fraction(s) for s in t] for t in SCORES]
    point = metrics(tasks)
    per_task = [resamples(t) for t in tasks]
    total = 1
    for t in tasks:
        total *= len(t) ** len(t)
    if task_bootstrap:
        total *= len(tasks) ** len(tasks)
    dists = {name: {} for name in point}
    for drawn, task_weight in task_draws(len(tasks), task_bootstrap):
        for choice in product(*(per_task[t] for t in drawn)):
            weight = task_weight
            for _, w in choice:
                weight *= w
            for name, value in metrics([runs for runs, _ in choice]).items():
                dists[name][value] = dists[name].get(value, 0) + weight
    totals = {name: total for name in point}
    if not task_bootstrap:
        probability_of_improvement(tasks, point, dists, totals)
    print_bounds(point, dists, totals)


def probability_of_improvement(tasks, point, dists, totals):
    # Probability of improvement of X = SCORES over Y = SCORES_Y: X's and Y's
    # runs resampled independently within each task. It is the mean of
    # independent per-task values, so its distribution is the convolution of
    # the per-task ones (each over 35 x 35 multiset pairs) rather than an
    # enumeration of 35^6 atoms.
    tasks_y = [[Fraction(s) for s in t] for t in SCORES_Y]
    point["probability_of_improvement"] = sum(
        (improvement(x, y) for x, y in zip(tasks, tasks_y)), Fraction(0)) / len(tasks)
    sum_dist = {Fraction(0): 1}
    total_poi = 1
    for x, y in zip(tasks, tasks_y):
        per_task = {}
        for (xr, wx), (yr, wy) in product(resamples(x), resamples(y)):
            v = improvement(xr, yr)
            per_task[v] = per_task.get(v, 0) + wx * wy
        total_poi *= len(x) ** len(x) * len(y) ** len(y)
        convolved = {}
        for a, wa in sum_dist.items():
            for b, wb in per_task.items():
                convolved[a + b] = convolved.get(a + b, 0) + wa * wb
        sum_dist = convolved
    dists["probability_of_improvement"] = {v / len(tasks): w for v, w in sum_dist.items()}
    totals["probability_of_improvement"] = total_poi


def print_bounds(point, dists, totals):
    s = sqrt(0.025 * 0.975 / REPS)
    delta = Fraction(SIGMAS * s).limit_denominator(10**9)
    print(f"# R = {REPS}, binomial sd of a 2.5% quantile's level = {s:.6f}, "
          f"bounds at +-{SIGMAS} sd")
    for name, value in point.items():
        d, total = dists[name], totals[name]
        lo, hi = Fraction(25, 1000), Fraction(975, 1000)
        print(f"{name}: point {float(value):.17g} ({value})")
        print(f"  exact q(0.025) = {float(quantile(d, total, lo)):.17g}, "
              f"q(0.975) = {float(quantile(d, total, hi)):.17g}")
        print(f"  lo in [{float(quantile(d, total, lo - delta)):.17g}, "
              f"{float(quantile(d, total, lo + delta)):.17g}]")
        print(f"  hi in [{float(quantile(d, total, hi - delta)):.17g}, "
              f"{float(quantile(d, total, hi + delta)):.17g}]")
        print(f"  {len(d)} distinct values over {total} equally likely resamples")


if __name__ == "__main__":
    main()
