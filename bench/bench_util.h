/* bench_util.h — timing for benchmarks: warm up, repeat, report the median. */
#ifndef TESSERA_BENCH_UTIL_H
#define TESSERA_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A whole number >= 1, or false. */
static inline bool bench_parse_positive(const char *text, long long *out)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || v < 1) return false;
    *out = v;
    return true;
}

/* "1,2" into threads[] (at most `max` counts, each 1..1024); false if bad. */
static inline bool bench_parse_threads(char *text, int *threads, int *count, int max)
{
    *count = 0;
    for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
        long long t;
        if (*count == max || !bench_parse_positive(tok, &t) || t > 1024) return false;
        threads[(*count)++] = (int)t;
    }
    return *count > 0;
}

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n samples (sorts them in place). */
static inline double bench_median(double *samples, int n)
{
    qsort(samples, (size_t)n, sizeof *samples, bench_cmp_double);
    return n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
}

/* Runs fn(user) `warmup` times untimed, then `reps` timed runs of `inner` calls
 * each, and returns the median seconds per call. */
static inline double bench_time(void (*fn)(void *), void *user, int warmup, int reps, int inner)
{
    for (int i = 0; i < warmup; i++) fn(user);
    double samples[64];
    if (reps > 64) reps = 64;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (int i = 0; i < inner; i++) fn(user);
        samples[r] = (bench_now() - t0) / inner;
    }
    return bench_median(samples, reps);
}

#endif
