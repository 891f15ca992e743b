/* The short causal depthwise convolution in C, float32, CPU (attnlab.ops.conv), with its SiLU fused:
   y[b, t, c] = sum_{i<K} w[c, i] x[b, t - K + 1 + i, c] (zeros before the start), a = silu(y) or y.

   In PyTorch ops (a transpose, a zero-padded concatenation, oneDNN's depthwise conv1d, a transpose back, then
   SiLU, each with its backward) this was 11% of a training step of S5's one-layer MQAR models, 8% in oneDNN's
   depthwise backward alone, for a kernel of 4 over [32, 64, 64] values: a few multiply-adds per value. Here
   each pass runs over the sequence once, 16 channels at a time so that the loops over channels vectorise; the
   backward recomputes y (K multiply-adds) rather than keeping it:

     dy = da sigmoid(y) (1 + y (1 - sigmoid(y))),  dx[s] = sum_i w[i] dy[s + K - 1 - i],
     dw[i] = sum_{b, t} dy[t] x[t - K + 1 + i].

   The weight's gradient of a channel is summed by one thread, batch rows and positions in order, so its bits
   do not depend on the number of threads (a run resumed in another process equals the original). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "vmath.h"

#define CB 16

/* y (pre-activation) at position s of one batch row's channel block [c0, c0 + nc), into acc */
static inline void conv_at(const float *xb, const float *wt, int s, int c, int c0, int nc, int K, float *acc) {
    for (int j = 0; j < nc; j++) acc[j] = 0.f;
    for (int i = s - K + 1 < 0 ? K - 1 - s : 0; i < K; i++) {
        const float *restrict xr = xb + (size_t)(s - K + 1 + i) * c + c0, *restrict wi = wt + (size_t)i * c + c0;
        #pragma omp simd
        for (int j = 0; j < nc; j++) acc[j] += wi[j] * xr[j];
    }
}

/* the weight transposed to [K, c], so that a tap's weights over a channel block are contiguous */
static float *transposed(const float *w, int c, int K) {
    float *wt = malloc(sizeof(float) * (size_t)K * c);
    if (wt)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < K; i++) wt[(size_t)i * c + ch] = w[(size_t)ch * K + i];
    return wt;
}

typedef struct {
    const float *x, *wt, *da; /* da: the output's gradient (backward only) */
    float *a, *dy, *dx;       /* a: the output (forward); dy, dx (backward) */
    int t, c, K, silu;
} job_t;

/* fn on every (batch row, 16-channel block) of a [b, t, c] job, spread over OpenMP threads */
static void over_blocks(void (*fn)(const job_t *, int bi, int c0, int nc), const job_t *J, int b, int nthreads) {
    const int c = J->c, nblk = (c + CB - 1) / CB;
    #pragma omp parallel for num_threads(nthreads) schedule(static) collapse(2)
    for (int bi = 0; bi < b; bi++)
        for (int cb = 0; cb < nblk; cb++) fn(J, bi, cb * CB, c - cb * CB < CB ? c - cb * CB : CB);
}

static void fwd_block(const job_t *J, int bi, int c0, int nc) {
    const int t = J->t, c = J->c;
    const float *xb = J->x + (size_t)bi * t * c;
    float acc[CB];
    for (int s = 0; s < t; s++) {
        conv_at(xb, J->wt, s, c, c0, nc, J->K, acc);
        float *restrict ar = J->a + ((size_t)bi * t + s) * c + c0;
        if (J->silu) {
            #pragma omp simd
            for (int j = 0; j < nc; j++) ar[j] = acc[j] * sigmoid(acc[j]);
        } else {
            for (int j = 0; j < nc; j++) ar[j] = acc[j];
        }
    }
}

/* dy (through SiLU's derivative at the recomputed y), then dx from it */
static void bwd_block(const job_t *J, int bi, int c0, int nc) {
    const int t = J->t, c = J->c, K = J->K;
    const float *xb = J->x + (size_t)bi * t * c;
    float *dyb = J->dy + (size_t)bi * t * c;
    float acc[CB];
    for (int s = 0; s < t; s++) {
        const float *restrict g = J->da + ((size_t)bi * t + s) * c + c0;
        float *restrict d = dyb + (size_t)s * c + c0;
        if (J->silu) {
            conv_at(xb, J->wt, s, c, c0, nc, K, acc);
            #pragma omp simd
            for (int j = 0; j < nc; j++) {
                const float sg = sigmoid(acc[j]);
                d[j] = g[j] * sg * (1.f + acc[j] * (1.f - sg));
            }
        } else {
            for (int j = 0; j < nc; j++) d[j] = g[j];
        }
    }
    for (int s = 0; s < t; s++) {
        float *restrict dr = J->dx + ((size_t)bi * t + s) * c + c0;
        for (int j = 0; j < nc; j++) dr[j] = 0.f;
        const int i0 = s + K - t > 0 ? s + K - t : 0; /* taps whose output position s + K - 1 - i < t */
        for (int i = i0; i < K; i++) {
            const float *restrict gy = dyb + (size_t)(s + K - 1 - i) * c + c0, *restrict wi = J->wt + (size_t)i * c + c0;
            #pragma omp simd
            for (int j = 0; j < nc; j++) dr[j] += wi[j] * gy[j];
        }
    }
}

/* x, a [b, t, c] contiguous, w [c, K]; returns 0, or 1 when the transposed weight could not be allocated */
int attnlab_short_conv_fwd(const float *x, const float *w, float *a, int b, int t, int c, int K, int silu,
                           int nthreads) {
    float *wt = transposed(w, c, K);
    if (!wt) return 1;
    const job_t J = {x, wt, NULL, a, NULL, NULL, t, c, K, silu};
    over_blocks(fwd_block, &J, b, nthreads);
    free(wt);
    return 0;
}

/* da the output's gradient [b, t, c]; dx [b, t, c] and dw [c, K] written; returns 0, or 1 when a buffer could
   not be allocated */
int attnlab_short_conv_bwd(const float *x, const float *w, const float *da, float *dx, float *dw, int b, int t, int c,
                           int K, int silu, int nthreads) {
    float *wt = transposed(w, c, K), *dy = malloc(sizeof(float) * (size_t)b * t * c);
    float *dwt = calloc((size_t)K * c, sizeof(float));
    if (!wt || !dy || !dwt) {
        free(wt), free(dy), free(dwt);
        return 1;
    }
    const job_t J = {x, wt, da, NULL, dy, dx, t, c, K, silu};
    over_blocks(bwd_block, &J, b, nthreads);
    const int nblk = (c + CB - 1) / CB;
    /* dw per channel block, summed over batch rows and positions in order by one thread */
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int cb = 0; cb < nblk; cb++) {
        const int c0 = cb * CB, nc = c - c0 < CB ? c - c0 : CB;
        for (int bi = 0; bi < b; bi++) {
            const float *xb = x + (size_t)bi * t * c, *dyb = dy + (size_t)bi * t * c;
            for (int s = 0; s < t; s++) {
                const float *restrict gy = dyb + (size_t)s * c + c0;
                for (int i = s - K + 1 < 0 ? K - 1 - s : 0; i < K; i++) {
                    const float *restrict xr = xb + (size_t)(s - K + 1 + i) * c + c0;
                    float *restrict d = dwt + (size_t)i * c + c0;
                    #pragma omp simd
                    for (int j = 0; j < nc; j++) d[j] += gy[j] * xr[j];
                }
            }
        }
    }
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < K; i++) dw[(size_t)ch * K + i] = dwt[(size_t)i * c + ch];
    free(wt), free(dy), free(dwt);
    return 0;
}
