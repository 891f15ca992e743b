/* The chunkwise (gated) delta rule forward in one call, float32, CPU (attnlab.ops.native).

   The same WY/UT algorithm as attnlab.ops.delta._chunk, fused per (batch row, head) so that a chunk's
   blocks stay in cache and no Python runs between chunks: heads are spread over OpenMP threads (the
   libgomp that torch already loaded), each runs its chunks in order, and the products go to the BLAS
   that torch links (its `sgemm_`, passed in as a pointer), single-threaded inside the parallel region.
   Where the PyTorch form computes full C x C products, this one computes lower triangles by halves and
   solves (I + A) X = diag(beta) [gamma K | V] by blocked forward substitution instead of inverting. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_t)(const char *, const char *, const int *, const int *, const int *, const float *,
                        const float *, const int *, const float *, const int *, const float *, float *,
                        const int *);

/* row-major C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, through a column-major BLAS */
static void gemm(sgemm_t f, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* BLAS would only scale C */
        for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
        return;
    }
    const char *ca = ta ? "T" : "N", *cb = tb ? "T" : "N";
    f(cb, ca, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
}


/* e^x for x <= 0 (the in-chunk decays), to ~1 ulp: x = n ln2 + r with |r| <= ln2 / 2, a degree-7
   Taylor polynomial in r, times 2^n built from the exponent bits. Branch-free so that the loops over
   it vectorise (libm's expf does not without -ffast-math); below -87.3 it returns ~1e-38, not 0. */
static inline float exp_le0(float x) {
    x = x < -87.3f ? -87.3f : x;
    const float n = __builtin_floorf(x * 1.44269504f + 0.5f);
    const float r = (x - n * 0.693145751953125f) - n * 1.4286068203094173e-06f;
    float p = 1.f / 5040.f;
    p = p * r + 1.f / 720.f;
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    const int bits = ((int)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#define LEAF 16

typedef struct {
    const float *q, *k, *v, *beta, *g; /* [b, t, h, d] and [b, t, h], contiguous */
    float *o, *S;                       /* o [b, t, h, dv]; S [b*h, dk, dv], read and written */
    int b, t, h, dk, dv, C;
    float scale;
    sgemm_t sgemm;
} job_t;

/* all chunks of one (batch row, head); returns max_i |beta_i| |k_i|^2 for the blow-up warning */
static float head(const job_t *J, int bh, float *ws) {
    float worst = 0.f;
    const int t = J->t, h = J->h, dk = J->dk, dv = J->dv, C = J->C, bi = bh / h, hi = bh % h;
    const int lk = h * dk, lv = h * dv, lx = dk + dv;
    const sgemm_t f = J->sgemm;
    const float *q = J->q + ((size_t)bi * t * h + hi) * dk, *k = J->k + ((size_t)bi * t * h + hi) * dk;
    const float *v = J->v + ((size_t)bi * t * h + hi) * dv;
    const float *be = J->beta + (size_t)bi * t * h + hi, *g = J->g ? J->g + (size_t)bi * t * h + hi : NULL;
    float *o = J->o + ((size_t)bi * t * h + hi) * dv, *S = J->S + (size_t)bh * dk * dv;
    float *A = ws, *P = A + C * C, *X = P + C * C, *Vn = X + C * lx, *G = Vn + C * dv, *E = G + C;
    for (int c0 = 0; c0 < t; c0 += C) {
        const int c = t - c0 < C ? t - c0 : C;
        const float *qc = q + (size_t)c0 * lk, *kc = k + (size_t)c0 * lk, *vc = v + (size_t)c0 * lv;
        const float *bc = be + (size_t)c0 * h;
        float *oc = o + (size_t)c0 * lv;
        if (g) {
            float acc = 0.f;
            for (int i = 0; i < c; i++) { acc += g[(size_t)(c0 + i) * h]; G[i] = acc; }
        }
        /* lower triangles of K K^T and Q K^T by halves: [:, :m] for all rows, [m:, m:] */
        const int m = c / 2;
        gemm(f, 0, 1, c, m, dk, 1.f, kc, lk, kc, lk, 0.f, A, C);
        gemm(f, 0, 1, c - m, c - m, dk, 1.f, kc + (size_t)m * lk, lk, kc + (size_t)m * lk, lk, 0.f, A + (size_t)m * C + m, C);
        gemm(f, 0, 1, c, m, dk, 1.f, qc, lk, kc, lk, 0.f, P, C);
        gemm(f, 0, 1, c - m, c - m, dk, 1.f, qc + (size_t)m * lk, lk, kc + (size_t)m * lk, lk, 0.f, P + (size_t)m * C + m, C);
        for (int i = 0; i < c; i++) {
            const float w = fabsf(bc[(size_t)i * h]) * A[(size_t)i * C + i];
            if (w > worst) worst = w;
        }
        /* A_ij = beta_i kk_ij exp(G_i - G_j) (j < i); P_ij = qk_ij exp(G_i - G_j) (j <= i), 0 above */
        for (int i = 0; i < c; i++) {
            float *ai = A + (size_t)i * C, *pi = P + (size_t)i * C;
            const float bi_ = bc[(size_t)i * h];
            if (g) {
                const float Gi = G[i];
                #pragma omp simd
                for (int j = 0; j <= i; j++) E[j] = exp_le0(Gi - G[j]);
                #pragma omp simd
                for (int j = 0; j < i; j++) ai[j] *= bi_ * E[j];
                #pragma omp simd
                for (int j = 0; j <= i; j++) pi[j] *= E[j];
            } else {
                #pragma omp simd
                for (int j = 0; j < i; j++) ai[j] *= bi_;
            }
            for (int j = i + 1; j < c; j++) pi[j] = 0.f;
        }
        /* X = (I + A)^-1 diag(beta) [gamma K | V] by blocked forward substitution */
        for (int i = 0; i < c; i++) {
            const float bi_ = bc[(size_t)i * h], s = g ? bi_ * exp_le0(G[i]) : bi_;
            float *x = X + (size_t)i * lx;
            const float *ki = kc + (size_t)i * lk, *vi = vc + (size_t)i * lv;
            #pragma omp simd
            for (int j = 0; j < dk; j++) x[j] = s * ki[j];
            #pragma omp simd
            for (int j = 0; j < dv; j++) x[dk + j] = bi_ * vi[j];
        }
        for (int r0 = 0; r0 < c; r0 += LEAF) {
            const int r1 = r0 + LEAF < c ? r0 + LEAF : c;
            gemm(f, 0, 0, r1 - r0, lx, r0, -1.f, A + (size_t)r0 * C, C, X, lx, 1.f, X + (size_t)r0 * lx, lx);
            for (int i = r0 + 1; i < r1; i++) {
                float *restrict x = X + (size_t)i * lx;
                const float *ai = A + (size_t)i * C;
                for (int j = r0; j < i; j++) {
                    const float a = ai[j], *restrict xj = X + (size_t)j * lx;
                    #pragma omp simd
                    for (int l = 0; l < lx; l++) x[l] -= a * xj[l];
                }
            }
        }
        /* V_new = U - W S */
        for (int i = 0; i < c; i++) memcpy(Vn + (size_t)i * dv, X + (size_t)i * lx + dk, sizeof(float) * dv);
        gemm(f, 0, 0, c, dv, dk, -1.f, X, lx, S, dv, 1.f, Vn, dv);
        /* O = scale (diag(gamma) Q S + P V_new), P lower-triangular: by halves again */
        gemm(f, 0, 0, c, dv, dk, J->scale, qc, lk, S, dv, 0.f, oc, lv);
        if (g)
            for (int i = 0; i < c; i++) {
                const float gi = exp_le0(G[i]);
                float *oi = oc + (size_t)i * lv;
                #pragma omp simd
                for (int j = 0; j < dv; j++) oi[j] *= gi;
            }
        gemm(f, 0, 0, c, dv, m, J->scale, P, C, Vn, dv, 1.f, oc, lv);
        gemm(f, 0, 0, c - m, dv, c - m, J->scale, P + (size_t)m * C + m, C, Vn + (size_t)m * dv, dv, 1.f, oc + (size_t)m * lv, lv);
        /* S = gamma_c S + (K o exp(G_c - G))^T V_new */
        if (g) {
            const float Gc = G[c - 1], gc = exp_le0(Gc);
            #pragma omp simd
            for (int i = 0; i < dk * dv; i++) S[i] *= gc;
            for (int i = 0; i < c; i++) {
                const float s = exp_le0(Gc - G[i]);
                float *vi = Vn + (size_t)i * dv;
                #pragma omp simd
                for (int j = 0; j < dv; j++) vi[j] *= s;
            }
        }
        gemm(f, 1, 0, dk, dv, c, 1.f, kc, lk, Vn, dv, 1.f, S, dv);
    }
    return worst;
}

/* returns 0, or 1 when a thread could not allocate its workspace */
int attnlab_delta_chunk_fwd(const float *q, const float *k, const float *v, const float *beta, const float *g,
                            float *o, float *S, int b, int t, int h, int dk, int dv, int C, float scale,
                            int nthreads, void *sgemm, float *worst_out) {
    const job_t J = {q, k, v, beta, g, o, S, b, t, h, dk, dv, C, scale, (sgemm_t)sgemm};
    const size_t wsz = (size_t)2 * C * C + (size_t)C * (dk + dv) + (size_t)C * dv + 2 * (size_t)C;
    int fail = 0;
    float worst = 0.f;
    #pragma omp parallel num_threads(nthreads) reduction(| : fail) reduction(max : worst)
    {
        float *ws = malloc(sizeof(float) * wsz);
        omp_set_num_threads(1); /* BLAS calls inside run on this thread alone */
        if (!ws) fail = 1;
        #pragma omp for schedule(static)
        for (int bh = 0; bh < b * h; bh++)
            if (ws) {
                const float w = head(&J, bh, ws);
                if (w > worst) worst = w;
            }
        free(ws);
    }
    *worst_out = worst;
    return fail;
}
