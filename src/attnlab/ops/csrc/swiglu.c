/* SwiGLU in C, float32, CPU (attnlab.ops.swiglu): y = silu(a) o b for u = [a | b], and its backward.

   In PyTorch ops the forward is two passes over the hidden activations (silu, then the product) and the
   backward four and a concatenation (g o b, g o silu(a), silu's backward, and the two halves joined into
   the up projection's gradient): at the ledger's text models (d = 64, a hidden width of 256, 2048 tokens a
   step) about a fifth of a training step, every pass memory-bound. Here each is one pass over the rows,
   spread over OpenMP threads, the sigmoid branch-free so that the loop vectorises:

     s = sigmoid(a),  y = a s b,  da = g b s (1 + a (1 - s)),  db = g a s. */
#include <omp.h>

#include "vmath.h"

static void row_fwd(const float *restrict a, const float *restrict b, float *restrict y, int h) {
    #pragma omp simd
    for (int j = 0; j < h; j++) y[j] = a[j] * sigmoid(a[j]) * b[j];
}

static void row_bwd(const float *restrict a, const float *restrict b, const float *restrict g, float *restrict da,
                    float *restrict db, int h) {
    #pragma omp simd
    for (int j = 0; j < h; j++) {
        const float s = sigmoid(a[j]), as = a[j] * s;
        da[j] = g[j] * b[j] * (s + as * (1.f - s));
        db[j] = g[j] * as;
    }
}

/* u [rows, 2 h] and y [rows, h], contiguous */
void attnlab_swiglu_fwd(const float *u, float *y, long rows, int h, int nthreads) {
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long r = 0; r < rows; r++) row_fwd(u + r * 2 * h, u + r * 2 * h + h, y + r * h, h);
}

/* g [rows, h] the output's gradient; du [rows, 2 h] the input's, both halves written in place */
void attnlab_swiglu_bwd(const float *u, const float *g, float *du, long rows, int h, int nthreads) {
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long r = 0; r < rows; r++)
        row_bwd(u + r * 2 * h, u + r * 2 * h + h, g + r * h, du + r * 2 * h, du + r * 2 * h + h, h);
}
