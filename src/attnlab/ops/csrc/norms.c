/* Row normalisations in C, float32, CPU (attnlab.ops.norm): RMSNorm, and the L2 normalisation of SiLU features
   that DeltaNet applies to its queries and keys, each forward and backward in one pass over the rows.

   In PyTorch ops each is a chain of elementwise passes with its own backward (RMSNorm: a power, a mean, a
   reciprocal square root and two products; silu then F.normalize: a norm, a clamp, a division, and their
   backwards): at the ledger's sizes ([2048, 64] to [2048, 128] a call) every pass is a trip through memory,
   while a row fits in the first-level cache. The forward keeps one number per row (1 / rms, or the norm) and
   the backward is the closed form:

     RMSNorm    y = x r w, r = 1 / sqrt(mean(x^2) + eps):  dx = r (g w - x r mean(g w x r)),  dw = sum_rows g x r
     silu + L2  s = silu(x), y = s / max(|s|, eps):  ds = (g - y (g . y)) / |s| (g / eps below eps),
                dx = ds sigmoid(x) (1 + x (1 - sigmoid(x))) */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "vmath.h"

static inline float sum_sq(const float *restrict x, int d) {
    float ss = 0.f;
    #pragma omp simd reduction(+ : ss)
    for (int j = 0; j < d; j++) ss += x[j] * x[j];
    return ss;
}

/* x, y [rows, d]; w [d]; inv [rows] (kept for the backward) */
void attnlab_rms_norm_fwd(const float *x, const float *w, float *y, float *inv, long rows, int d, float eps,
                          int nthreads) {
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *restrict xr = x + r * d;
        float *restrict yr = y + r * d;
        const float iv = 1.f / sqrtf(sum_sq(xr, d) / d + eps);
        inv[r] = iv;
        #pragma omp simd
        for (int j = 0; j < d; j++) yr[j] = xr[j] * iv * w[j];
    }
}

/* the weight's gradient is summed in BUCKETS fixed blocks of rows, then over the blocks in order: the same sums
   (to the bit) whatever the number of threads, so that a run resumed in another process equals the original */
#define BUCKETS 16

/* gx [rows, d]; gw [d] or NULL (no weight gradient); returns 0, or 1 when the partial sums could not be allocated */
int attnlab_rms_norm_bwd(const float *x, const float *w, const float *inv, const float *g, float *gx, float *gw,
                         long rows, int d, int nthreads) {
    const long nb = rows < BUCKETS ? rows : BUCKETS;
    float *part = gw ? calloc((size_t)(nb > 0 ? nb : 1) * d, sizeof(float)) : NULL;
    if (gw && !part) return 1;
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long p = 0; p < nb; p++) {
        float *restrict acc = part ? part + (size_t)p * d : NULL;
        for (long r = p * rows / nb; r < (p + 1) * rows / nb; r++) {
            const float *restrict xr = x + r * d, *restrict gr = g + r * d;
            float *restrict o = gx + r * d;
            const float iv = inv[r];
            float dot = 0.f;
            #pragma omp simd reduction(+ : dot)
            for (int j = 0; j < d; j++) dot += gr[j] * w[j] * xr[j];
            const float m = dot * iv * iv / d; /* mean(g w xhat) / rms */
            #pragma omp simd
            for (int j = 0; j < d; j++) o[j] = (gr[j] * w[j] - xr[j] * m) * iv;
            if (acc) {
                #pragma omp simd
                for (int j = 0; j < d; j++) acc[j] += gr[j] * xr[j] * iv;
            }
        }
    }
    if (gw) {
        for (int j = 0; j < d; j++) gw[j] = 0.f;
        for (long p = 0; p < nb; p++)
            for (int j = 0; j < d; j++) gw[j] += part[(size_t)p * d + j];
        free(part);
    }
    return 0;
}

/* x, y [rows, d]; nrm [rows]: |silu(x)| per row, kept for the backward */
void attnlab_silu_l2_fwd(const float *x, float *y, float *nrm, long rows, int d, float eps, int nthreads) {
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *restrict xr = x + r * d;
        float *restrict yr = y + r * d;
        #pragma omp simd
        for (int j = 0; j < d; j++) yr[j] = xr[j] * sigmoid(xr[j]);
        const float n = sqrtf(sum_sq(yr, d)), inv = 1.f / (n > eps ? n : eps);
        nrm[r] = n;
        #pragma omp simd
        for (int j = 0; j < d; j++) yr[j] *= inv;
    }
}

void attnlab_silu_l2_bwd(const float *x, const float *nrm, const float *g, float *gx, long rows, int d, float eps,
                         int nthreads) {
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *restrict xr = x + r * d, *restrict gr = g + r * d;
        float *restrict o = gx + r * d;
        const float n = nrm[r], inv = 1.f / (n > eps ? n : eps);
        float dot = 0.f; /* g . y */
        #pragma omp simd reduction(+ : dot)
        for (int j = 0; j < d; j++) dot += gr[j] * xr[j] * sigmoid(xr[j]) * inv;
        const float c = n >= eps ? dot : 0.f; /* below eps the norm is the constant eps (as torch's clamp) */
        #pragma omp simd
        for (int j = 0; j < d; j++) {
            const float s = sigmoid(xr[j]), y = xr[j] * s * inv;
            o[j] = (gr[j] - y * c) * inv * s * (1.f + xr[j] * (1.f - s));
        }
    }
}
