/* real.h — the element type of a templated reference kernel.
 *
 * Reference kernels are written once in terms of `real` and compiled twice by
 * meson (src/kernels/meson.build), with TSR_REAL_BITS=32 and =64. TSR_FN(name)
 * gives each instantiation its own symbol: name_f32 or name_f64. Declarations
 * for both live in kernels.h. */
#ifndef TESSERA_KERNELS_REAL_H
#define TESSERA_KERNELS_REAL_H

#if TSR_REAL_BITS == 32
typedef float real;
#define TSR_FN(name) name##_f32
#elif TSR_REAL_BITS == 64
typedef double real;
#define TSR_FN(name) name##_f64
#else
#error "compile reference kernels with TSR_REAL_BITS=32 or 64"
#endif

#endif
