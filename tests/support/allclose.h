/* allclose.h — comparisons that report the worst mismatch and fail the test. */
#ifndef TESSERA_TEST_ALLCLOSE_H
#define TESSERA_TEST_ALLCLOSE_H

#include <stdbool.h>

#include "tessera/tensor.h"

/* Fails the current Criterion test unless every |a - b| <= atol + rtol * |b|.
 * On failure the message names `what`, the worst index, both values and the
 * shapes. Tensors may be strided and of different float dtypes. */
void tsr_test_allclose(const tsr_tensor *a, const tsr_tensor *b, double rtol, double atol,
                       const char *what);

/* Same comparison over raw arrays of doubles or floats. */
void tsr_test_allclose_f32(const float *a, const float *b, long n, double rtol, double atol,
                           const char *what);
void tsr_test_allclose_f64(const double *a, const double *b, long n, double rtol, double atol,
                           const char *what);

#endif
