/* bench_util.h — timing for benchmarks: warm up, repeat, report the median. */
#ifndef TESSERA_BENCH_UTIL_H
#define TESSERA_BENCH_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
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

/* Command-line options shared by the benchmarks. Each returns false when
 * argv[*i] is not the option `name`; when it is, it consumes the value (and
 * advances *i) or, for a missing or bad value, prints what is wrong and what is
 * allowed, prefixed by `prog`, and exits with status 2. */
static inline bool bench_int_option(const char *prog, int argc, char **argv, int *i,
                                    const char *name, long long min, long long max, long long *out)
{
    if (strcmp(argv[*i], name)) return false;
    if (*i + 1 == argc) {
        fprintf(stderr, "%s: %s needs a value (a whole number from %lld to %lld)\n", prog, name,
                min, max);
        exit(2);
    }
    const char *text = argv[++*i];
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno || v < min || v > max) {
        fprintf(stderr, "%s: %s '%s': must be a whole number from %lld to %lld\n", prog, name, text,
                min, max);
        exit(2);
    }
    *out = v;
    return true;
}

/* --threads LIST: a comma-separated list of at most `max` thread counts, each
 * from 1 to 1024. */
static inline bool bench_threads_option(const char *prog, int argc, char **argv, int *i,
                                        int *threads, int *count, int max)
{
    if (strcmp(argv[*i], "--threads")) return false;
    if (*i + 1 == argc) {
        fprintf(stderr, "%s: --threads needs a value, e.g. 1,2\n", prog);
        exit(2);
    }
    const char *text = argv[++*i];
    char copy[256];
    int n = 0;
    bool ok = strlen(text) < sizeof copy;
    if (ok) {
        strcpy(copy, text);
        for (char *tok = strtok(copy, ","); ok && tok; tok = strtok(NULL, ",")) {
            long long t;
            ok = n < max && bench_parse_positive(tok, &t) && t <= 1024;
            if (ok) threads[n++] = (int)t;
        }
    }
    if (!ok || !n) {
        fprintf(stderr,
                "%s: --threads '%s': must be a comma-separated list of at most %d thread counts "
                "from 1 to 1024, e.g. 1,2\n",
                prog, text, max);
        exit(2);
    }
    *count = n;
    return true;
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
