/* Chunkwise linear recurrences in C, float32, CPU (attnlab.ops.native): the (gated) delta rule's forward and
   backward, and decayed linear attention's forward.

   The same WY/UT algorithm as attnlab.ops.delta_engines.chunk_pytorch, fused per (batch row, head) so that a
   chunk's blocks stay in cache and no Python runs between chunks: heads are spread over OpenMP threads (the
   libgomp that torch already loaded), each runs its chunks in order, and the products go to the BLAS
   that torch links (its `sgemm_`, passed in as a pointer), single-threaded inside the parallel region.
   Where the PyTorch form computes full C x C products, the forward computes lower triangles by halves and
   solves (I + A) X = diag(beta) [gamma K | V] by blocked forward substitution instead of inverting. The
   backward walks the chunks last first from the state the forward kept at each chunk's start, and reads the
   blocks the forward kept (or replays them); decayed linear attention is the forward without the solve. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "vmath.h"

typedef void (*sgemm_t)(const char *, const char *, const int *, const int *, const int *, const float *,
                        const float *, const int *, const float *, const int *, const float *, float *,
                        const int *);

/* row-major C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, through a column-major BLAS */
static void gemm(sgemm_t f, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* BLAS would only scale C, and with beta = 0 set it (C may be uninitialised: 0 * NaN is NaN) */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.f ? 0.f : C[(size_t)i * ldc + j] * beta;
        return;
    }
    const char *ca = ta ? "T" : "N", *cb = tb ? "T" : "N";
    f(cb, ca, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
}


#define LEAF 16

/* products with a lower-triangular [c, c] factor (row stride ldl, zeros above its diagonal), by halves so
   that the zero block [:m, m:] (a quarter of the square) is neither computed nor read:
   the lower triangle of alpha X Y^T (blocks [:, :m] and [m:, m:]; the block [:m, m:] is left unwritten) */
static void lower_of(sgemm_t f, int c, int d, float alpha, const float *X, int ldx, const float *Y, int ldy,
                     float *L, int ldl) {
    const int m = c / 2;
    gemm(f, 0, 1, c, m, d, alpha, X, ldx, Y, ldy, 0.f, L, ldl);
    gemm(f, 0, 1, c - m, c - m, d, alpha, X + (size_t)m * ldx, ldx, Y + (size_t)m * ldy, ldy, 0.f,
         L + (size_t)m * ldl + m, ldl);
}

/* R = alpha L B + beta R (rows [:m] read L[:m, :m], rows [m:] read L[m:, :]) */
static void lower_times(sgemm_t f, int c, int n, float alpha, const float *L, int ldl, const float *B, int ldb,
                        float beta, float *R, int ldr) {
    const int m = c / 2;
    gemm(f, 0, 0, m, n, m, alpha, L, ldl, B, ldb, beta, R, ldr);
    gemm(f, 0, 0, c - m, n, c, alpha, L + (size_t)m * ldl, ldl, B, ldb, beta, R + (size_t)m * ldr, ldr);
}

/* R = alpha L^T B + beta R (rows [:m] read L[:, :m], rows [m:] read L[m:, m:]) */
static void lower_t_times(sgemm_t f, int c, int n, float alpha, const float *L, int ldl, const float *B, int ldb,
                          float beta, float *R, int ldr) {
    const int m = c / 2;
    gemm(f, 1, 0, m, n, c, alpha, L, ldl, B, ldb, beta, R, ldr);
    gemm(f, 1, 0, c - m, n, c - m, alpha, L + (size_t)m * ldl + m, ldl, B + (size_t)m * ldb, ldb, beta,
         R + (size_t)m * ldr, ldr);
}

/* O = scale (diag(exp(G)) Q S + P V) of one chunk (G NULL: no decay; S NULL: a zero state, whose products are
   skipped), P [c, c] lower-triangular (row stride C): its product by halves, the [m:, :m] block and the lower
   [m:, m:] one */
static void chunk_output(sgemm_t f, const float *Q, int lq, const float *S, const float *P, const float *V, int lvi,
                         float *O, int lo, const float *G, int c, int C, int dk, int dv, float scale) {
    const int m = c / 2;
    if (S) gemm(f, 0, 0, c, dv, dk, scale, Q, lq, S, dv, 0.f, O, lo);
    if (S && G)
        for (int i = 0; i < c; i++) {
            const float gi = exp_le0(G[i]);
            float *oi = O + (size_t)i * lo;
            #pragma omp simd
            for (int j = 0; j < dv; j++) oi[j] *= gi;
        }
    gemm(f, 0, 0, c, dv, m, scale, P, C, V, lvi, S ? 1.f : 0.f, O, lo);
    gemm(f, 0, 0, c - m, dv, c - m, scale, P + (size_t)m * C + m, C, V + (size_t)m * lvi, lvi, 1.f, O + (size_t)m * lo,
         lo);
}

/* X <- (I + A)^-1 X in place, A strictly lower-triangular [c, c] (row stride C), X [c, lx]: forward
   substitution by LEAF-row blocks (a product with the rows already solved, then a row loop inside the block) */
static void lower_solve(sgemm_t f, const float *A, float *X, int c, int C, int lx) {
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
}

typedef struct {
    const float *q, *k, *v, *beta, *g; /* [b, t, h, d] and [b, t, h], contiguous */
    float *o, *S;                       /* o [b, t, h, dv]; S [b*h, dk, dv], read and written */
    float *starts;                      /* NULL, or [b*h, n chunks, dk, dv]: the state entering each chunk */
    float *saved;                       /* NULL, or [b*h, n chunks, SAVED floats]: each chunk's blocks (below) */
    int b, t, h, dk, dv, C;
    int zero_start;                     /* S is zero on entry: the first chunk skips its products with it */
    int need_final;                     /* 0: the caller does not read the final state, the last update is skipped */
    float scale;
    sgemm_t sgemm;
} job_t;

/* all chunks of one (batch row, head); returns max_i |beta_i| |k_i|^2 for the blow-up warning */
/* what the forward keeps of each chunk for the backward, row stride C or d: K K^T o E (strict lower), P (lower),
   X = [W | U] and V_new (before the gate's decay into the state) */
static size_t saved_size(int C, int dk, int dv) { return (size_t)C * (2 * (size_t)C + dk + 2 * (size_t)dv); }

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
        const int c = t - c0 < C ? t - c0 : C, zero = J->zero_start && c0 == 0;
        if (J->starts && !zero) /* kept for the backward pass, which does not read a zero one */
            memcpy(J->starts + ((size_t)bh * ((t + C - 1) / C) + c0 / C) * dk * dv, S, sizeof(float) * dk * dv);
        float *sv = J->saved ? J->saved + ((size_t)bh * ((t + C - 1) / C) + c0 / C) * saved_size(C, dk, dv) : NULL;
        const float *qc = q + (size_t)c0 * lk, *kc = k + (size_t)c0 * lk, *vc = v + (size_t)c0 * lv;
        const float *bc = be + (size_t)c0 * h;
        float *oc = o + (size_t)c0 * lv;
        if (g) {
            float acc = 0.f;
            for (int i = 0; i < c; i++) { acc += g[(size_t)(c0 + i) * h]; G[i] = acc; }
        }
        /* lower triangles of K K^T and Q K^T by halves */
        lower_of(f, c, dk, 1.f, kc, lk, kc, lk, A, C);
        lower_of(f, c, dk, 1.f, qc, lk, kc, lk, P, C);
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
                for (int j = 0; j < i; j++) ai[j] *= E[j];
                #pragma omp simd
                for (int j = 0; j <= i; j++) pi[j] *= E[j];
            }
            if (sv) memcpy(sv + (size_t)i * C, ai, sizeof(float) * i);
            #pragma omp simd
            for (int j = 0; j < i; j++) ai[j] *= bi_;
            for (int j = i + 1; j < c; j++) pi[j] = 0.f;
        }
        if (sv) memcpy(sv + (size_t)C * C, P, sizeof(float) * c * C);
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
        lower_solve(f, A, X, c, C, lx);
        /* V_new = U - W S */
        for (int i = 0; i < c; i++) memcpy(Vn + (size_t)i * dv, X + (size_t)i * lx + dk, sizeof(float) * dv);
        if (!zero) gemm(f, 0, 0, c, dv, dk, -1.f, X, lx, S, dv, 1.f, Vn, dv);
        if (sv) {
            memcpy(sv + 2 * (size_t)C * C, X, sizeof(float) * c * lx);
            memcpy(sv + 2 * (size_t)C * C + (size_t)C * lx, Vn, sizeof(float) * c * dv);
        }
        /* O = scale (diag(gamma) Q S + P V_new), P lower-triangular: by halves again */
        chunk_output(f, qc, lk, zero ? NULL : S, P, Vn, dv, oc, lv, g ? G : NULL, c, C, dk, dv, J->scale);
        if (c0 + c == t && !J->need_final) break;
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
                            float *o, float *S, float *starts, float *saved, int b, int t, int h, int dk, int dv, int C,
                            int zero_start, int need_final, float scale, int nthreads, void *sgemm,
                            float *worst_out) {
    const job_t J = {q, k, v, beta, g, o, S, starts, saved, b, t, h, dk, dv, C, zero_start, need_final, scale,
                     (sgemm_t)sgemm};
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


/* every (batch row, head) of a job through fn, spread over OpenMP threads, each with its own workspace of wsz
   floats; returns 0, or 1 when a thread could not allocate it */
typedef void (*head_fn)(const void *job, int bh, float *ws);

static int over_heads(head_fn fn, const void *job, int n, size_t wsz, int nthreads) {
    int fail = 0;
    #pragma omp parallel num_threads(nthreads) reduction(| : fail)
    {
        float *ws = malloc(sizeof(float) * wsz);
        omp_set_num_threads(1); /* BLAS calls inside run on this thread alone */
        if (!ws) fail = 1;
        #pragma omp for schedule(static)
        for (int bh = 0; bh < n; bh++)
            if (ws) fn(job, bh, ws);
        free(ws);
    }
    return fail;
}


/* ---- the backward pass, chunkwise -----------------------------------------------------------------

   Per chunk, from the state S entering it (kept by the forward), with G the in-chunk cumulative log-decay,
   gamma = exp(G), E_ij = exp(G_i - G_j) (all 1 without a gate), A = strict_lower(diag(beta) (K K^T o E)),
   X = [W | U] = (I + A)^-1 diag(beta) [gamma o K | V], Vn = U - W S, P = lower(Q K^T o E),
   O = s (gamma o Q S + P Vn) and S' = gamma_c S + Kd^T Vn with Kd_i = exp(G_c - G_i) k_i; given dO and dS'
   (the gradient of the state leaving the chunk), last chunk first:

     dVn = s P^T dO + Kd dS'                 dP = lower(s dO Vn^T),  dPe = dP o E
     dQ  = s gamma o dO S^T + dPe K          dK = dPe^T Q + exp(G_c - G) o (Vn dS'^T)
     dX  = [-dVn S^T | dVn]                  dS = gamma_c dS' + s (gamma o Q)^T dO - W^T dVn
     dB  = (I + A)^-T dX                     (back substitution; B = diag(beta) [gamma o K | V])
     dA  = strict_lower(-dB X^T)             dbeta_i = dB_i . [gamma_i k_i | v_i] + sum_j dA_ij (K K^T o E)_ij
     dK += diag(beta gamma) dB_K + H K + H^T K with H = diag(beta) (dA o E);  dV = diag(beta) dB_V

   and with a gate dG collects every term's derivative in G (a product with E_ij gives +t_ij to G_i and -t_ij
   to G_j, and so on), whose reverse cumulative sum in the chunk is dg. Every product is a C x C, C x d or
   d x d block through the BLAS, as in the forward (a backward that walked the tokens back one by one did
   a few passes over the state per token at vector speed and was no faster than PyTorch's autograd of the
   chunk form). */

typedef struct {
    const float *q, *k, *v, *beta, *g, *dO, *dSf, *starts; /* g, dSf may be NULL; starts is required */
    const float *saved;                                     /* NULL (each chunk is replayed), or the forward's */
    float *dq, *dk, *dv, *dbeta, *dg, *dS0;                 /* dg NULL without a gate */
    int b, t, h, dk_, dv_, C;
    int zero_start; /* the state entering the first chunk is zero and needs no gradient (no initial state) */
    float scale;
    sgemm_t sgemm;
} cjob_t;

/* row sums into dG_i and column sums out of dG_j of t_ij = x_ij y_ij over j < i (strict) or j <= i */
static void decay_grad(const float *x, const float *y, int c, int C, int strict, float *dG) {
    for (int i = 0; i < c; i++) {
        const float *xi = x + (size_t)i * C, *yi = y + (size_t)i * C;
        const int jn = strict ? i : i + 1;
        float r = 0.f;
        for (int j = 0; j < jn; j++) {
            const float t_ = xi[j] * yi[j];
            r += t_;
            dG[j] -= t_;
        }
        dG[i] += r;
    }
}

static void head_chunk_bwd(const void *job, int bh, float *ws) {
    const cjob_t *J = job;
    const int t = J->t, h = J->h, dk = J->dk_, dv = J->dv_, C = J->C, bi = bh / h, hi = bh % h;
    const int n = (t + C - 1) / C, lk = h * dk, lv = h * dv, lx = dk + dv;
    const size_t sz = (size_t)dk * dv;
    const sgemm_t f = J->sgemm;
    const float s = J->scale;
    float *KK = ws, *A = KK + C * C, *P = A + C * C, *dP = P + C * C, *E = dP + C * C;
    float *X = E + C * C, *dX = X + (size_t)C * lx, *Vn = dX + (size_t)C * lx, *dVn = Vn + (size_t)C * dv;
    float *QS = dVn + (size_t)C * dv, *Kd = QS + (size_t)C * dv, *T1 = Kd + (size_t)C * dk;
    float *dS = T1 + (size_t)C * dk, *G = dS + sz, *gam = G + C, *dG = gam + C;
    const size_t off_k = ((size_t)bi * t * h + hi) * dk, off_v = ((size_t)bi * t * h + hi) * dv;
    const size_t off_b = (size_t)bi * t * h + hi;
    /* products with a zero S (the first chunk without an initial state) or a zero dS (the last chunk when the
       final state has no gradient) are skipped: in training, the only chunk of a sequence no longer than C
       then does a quarter of the full arithmetic */
    int dS_zero = J->dSf == NULL;
    if (J->dSf) memcpy(dS, J->dSf + (size_t)bh * sz, sizeof(float) * sz);
    else memset(dS, 0, sizeof(float) * sz);
    for (int ci = n - 1; ci >= 0; ci--) {
        const int c0 = ci * C, c = t - c0 < C ? t - c0 : C, S_zero = J->zero_start && ci == 0;
        const float *S = J->starts + ((size_t)bh * n + ci) * sz;
        const float *qc = J->q + off_k + (size_t)c0 * lk, *kc = J->k + off_k + (size_t)c0 * lk;
        const float *vc = J->v + off_v + (size_t)c0 * lv, *doc = J->dO + off_v + (size_t)c0 * lv;
        const float *bc = J->beta + off_b + (size_t)c0 * h, *gc_ = J->g ? J->g + off_b + (size_t)c0 * h : NULL;
        float *dqc = J->dq + off_k + (size_t)c0 * lk, *dkc = J->dk + off_k + (size_t)c0 * lk;
        float *dvc = J->dv + off_v + (size_t)c0 * lv, *dbc = J->dbeta + off_b + (size_t)c0 * h;
        float Gc = 0.f, gC = 1.f;
        if (gc_) {
            float acc = 0.f;
            for (int i = 0; i < c; i++) {
                acc += gc_[(size_t)i * h];
                G[i] = acc;
                gam[i] = exp_le0(acc);
                dG[i] = 0.f;
            }
            Gc = G[c - 1];
            gC = gam[c - 1];
            for (int i = 0; i < c; i++)
                for (int j = 0; j <= i; j++) E[(size_t)i * C + j] = exp_le0(G[i] - G[j]);
        }
        /* the chunk's blocks, kept by the forward or replayed from S: K K^T o E, P, X and V_new */
        const float *KKE = KK, *Pp = P, *Xp = X, *Vnp = Vn;
        if (J->saved) {
            const float *sv = J->saved + ((size_t)bh * n + ci) * saved_size(C, dk, dv);
            KKE = sv;
            Pp = sv + (size_t)C * C;
            Xp = Pp + (size_t)C * C;
            Vnp = Xp + (size_t)C * lx;
            for (int i = 0; i < c; i++) {
                const float b_ = bc[(size_t)i * h];
                float *ai = A + (size_t)i * C;
                const float *kki = KKE + (size_t)i * C;
                for (int j = 0; j < i; j++) ai[j] = b_ * kki[j];
                for (int j = i; j < c; j++) ai[j] = 0.f;
            }
        } else {
            lower_of(f, c, dk, 1.f, kc, lk, kc, lk, KK, C);
            lower_of(f, c, dk, 1.f, qc, lk, kc, lk, P, C);
            for (int i = 0; i < c; i++) {
                const float b_ = bc[(size_t)i * h], gi = gc_ ? gam[i] : 1.f;
                float *ai = A + (size_t)i * C, *pi = P + (size_t)i * C, *kki = KK + (size_t)i * C;
                const float *ei = E + (size_t)i * C;
                if (gc_) {
                    for (int j = 0; j < i; j++) kki[j] *= ei[j];
                    for (int j = 0; j <= i; j++) pi[j] *= ei[j];
                }
                for (int j = 0; j < i; j++) ai[j] = b_ * kki[j];
                for (int j = i; j < c; j++) ai[j] = 0.f;
                for (int j = i + 1; j < c; j++) pi[j] = 0.f;
                float *x = X + (size_t)i * lx;
                const float *ki = kc + (size_t)i * lk, *vi = vc + (size_t)i * lv;
                for (int l = 0; l < dk; l++) x[l] = b_ * gi * ki[l];
                for (int l = 0; l < dv; l++) x[dk + l] = b_ * vi[l];
            }
            lower_solve(f, A, X, c, C, lx); /* (I + A) X = B */
            for (int i = 0; i < c; i++) memcpy(Vn + (size_t)i * dv, X + (size_t)i * lx + dk, sizeof(float) * dv);
            if (!S_zero) gemm(f, 0, 0, c, dv, dk, -1.f, X, lx, S, dv, 1.f, Vn, dv);
        }
        const float *Kx = kc; /* Kd: the keys as the state leaving the chunk sees them */
        int lkd = lk;
        if (gc_ && !dS_zero) {
            for (int i = 0; i < c; i++) {
                const float w = exp_le0(Gc - G[i]), *ki = kc + (size_t)i * lk;
                float *kd = Kd + (size_t)i * dk;
                for (int l = 0; l < dk; l++) kd[l] = w * ki[l];
            }
            Kx = Kd;
            lkd = dk;
        }
        /* dVn; dP (and through E, dG); dQ; dK (direct) */
        lower_t_times(f, c, dv, s, Pp, C, doc, lv, 0.f, dVn, dv);
        if (!dS_zero) gemm(f, 0, 0, c, dv, dk, 1.f, Kx, lkd, dS, dv, 1.f, dVn, dv);
        lower_of(f, c, dv, s, doc, lv, Vnp, dv, dP, C);
        for (int i = 0; i < c; i++) for (int j = i + 1; j < c; j++) dP[(size_t)i * C + j] = 0.f;
        if (gc_) {
            decay_grad(dP, Pp, c, C, 0, dG);
            for (int i = 0; i < c; i++) for (int j = 0; j <= i; j++) dP[(size_t)i * C + j] *= E[(size_t)i * C + j];
        }
        if (!S_zero) gemm(f, 0, 1, c, dk, dv, s, doc, lv, S, dv, 0.f, dqc, lk);
        if (gc_ && !S_zero) {
            gemm(f, 0, 0, c, dv, dk, 1.f, qc, lk, S, dv, 0.f, QS, dv);
            for (int i = 0; i < c; i++) {
                const float *oi = doc + (size_t)i * lv, *si = QS + (size_t)i * dv;
                float d = 0.f;
                for (int l = 0; l < dv; l++) d += oi[l] * si[l];
                dG[i] += s * gam[i] * d;
                float *dqi = dqc + (size_t)i * lk;
                for (int l = 0; l < dk; l++) dqi[l] *= gam[i];
            }
        }
        lower_times(f, c, dk, 1.f, dP, C, kc, lk, S_zero ? 0.f : 1.f, dqc, lk);
        lower_t_times(f, c, dk, 1.f, dP, C, qc, lk, 0.f, dkc, lk);
        if (gc_ && !dS_zero) {
            gemm(f, 0, 1, c, dk, dv, 1.f, Vnp, dv, dS, dv, 0.f, T1, dk);
            for (int i = 0; i < c; i++) {
                const float w = exp_le0(Gc - G[i]), *ti = T1 + (size_t)i * dk, *kd = Kd + (size_t)i * dk;
                float *dki = dkc + (size_t)i * lk, u = 0.f;
                for (int l = 0; l < dk; l++) { u += ti[l] * kd[l]; dki[l] += w * ti[l]; }
                dG[c - 1] += u;
                dG[i] -= u;
            }
        } else if (!dS_zero) {
            gemm(f, 0, 1, c, dk, dv, 1.f, Vnp, dv, dS, dv, 1.f, dkc, lk);
        }
        /* dX = [-dVn S^T | dVn]; then the state's gradient moves to the chunk's start (not past a zero start) */
        if (S_zero)
            for (int i = 0; i < c; i++) memset(dX + (size_t)i * lx, 0, sizeof(float) * dk);
        else
            gemm(f, 0, 1, c, dk, dv, -1.f, dVn, dv, S, dv, 0.f, dX, lx);
        for (int i = 0; i < c; i++) memcpy(dX + (size_t)i * lx + dk, dVn + (size_t)i * dv, sizeof(float) * dv);
        if (gc_ && !S_zero) {
            float inner = 0.f;
            for (size_t i = 0; i < sz; i++) { inner += dS[i] * S[i]; dS[i] *= gC; }
            dG[c - 1] += gC * inner;
            for (int i = 0; i < c; i++) { /* gamma o Q, into Kd (no longer needed) */
                const float *qi = qc + (size_t)i * lk;
                float *x = Kd + (size_t)i * dk;
                for (int l = 0; l < dk; l++) x[l] = gam[i] * qi[l];
            }
            gemm(f, 1, 0, dk, dv, c, s, Kd, dk, doc, lv, 1.f, dS, dv);
        } else if (!S_zero) {
            gemm(f, 1, 0, dk, dv, c, s, qc, lk, doc, lv, 1.f, dS, dv);
        }
        if (!S_zero) {
            gemm(f, 1, 0, dk, dv, c, -1.f, Xp, lx, dVn, dv, 1.f, dS, dv);
            dS_zero = 0;
        }
        /* dB = (I + A)^-T dX, blocked back substitution in place */
        for (int r1 = c; r1 > 0;) {
            const int r0 = r1 - LEAF > 0 ? r1 - LEAF : 0;
            gemm(f, 1, 0, r1 - r0, lx, c - r1, -1.f, A + (size_t)r1 * C + r0, C, dX + (size_t)r1 * lx, lx, 1.f,
                 dX + (size_t)r0 * lx, lx);
            for (int i = r1 - 2; i >= r0; i--) {
                float *restrict x = dX + (size_t)i * lx;
                for (int j = i + 1; j < r1; j++) {
                    const float a = A[(size_t)j * C + i], *restrict xj = dX + (size_t)j * lx;
                    #pragma omp simd
                    for (int l = 0; l < lx; l++) x[l] -= a * xj[l];
                }
            }
            r1 = r0;
        }
        /* dA = strict_lower(-dB X^T), into dP; its decay terms into dG; then H = diag(beta) (dA o E) */
        lower_of(f, c, lx, -1.f, dX, lx, Xp, lx, dP, C);
        if (gc_) decay_grad(dP, A, c, C, 1, dG);
        for (int i = 0; i < c; i++) {
            const float b_ = bc[(size_t)i * h], gi = gc_ ? gam[i] : 1.f;
            float *hi_ = dP + (size_t)i * C;
            const float *kki = KKE + (size_t)i * C, *ei = E + (size_t)i * C, *x = dX + (size_t)i * lx;
            const float *ki = kc + (size_t)i * lk, *vi = vc + (size_t)i * lv;
            float db = 0.f, dbk = 0.f;
            if (gc_)
                for (int j = 0; j < i; j++) { db += hi_[j] * kki[j]; hi_[j] *= b_ * ei[j]; }
            else
                for (int j = 0; j < i; j++) { db += hi_[j] * kki[j]; hi_[j] *= b_; }
            for (int j = i; j < c; j++) hi_[j] = 0.f;
            for (int l = 0; l < dk; l++) dbk += x[l] * ki[l];
            db += gi * dbk;
            for (int l = 0; l < dv; l++) db += x[dk + l] * vi[l];
            dbc[(size_t)i * h] = db;
            if (gc_) dG[i] += b_ * gi * dbk;
            float *dki = dkc + (size_t)i * lk, *dvi = dvc + (size_t)i * lv;
            for (int l = 0; l < dk; l++) dki[l] += b_ * gi * x[l];
            for (int l = 0; l < dv; l++) dvi[l] = b_ * x[dk + l];
        }
        /* dK += (H + H^T) K: H strictly lower, so the sum is H below the diagonal and H^T above, one product */
        for (int i = 0; i < c; i++)
            for (int j = 0; j < i; j++) dP[(size_t)j * C + i] = dP[(size_t)i * C + j];
        gemm(f, 0, 0, c, dk, c, 1.f, dP, C, kc, lk, 1.f, dkc, lk);
        if (gc_) { /* G_i = g_1 + ... + g_i: dg is dG's reverse cumulative sum in the chunk */
            float *dgc = J->dg + off_b + (size_t)c0 * h, acc = 0.f;
            for (int i = c - 1; i >= 0; i--) { acc += dG[i]; dgc[(size_t)i * h] = acc; }
        }
    }
    if (!J->zero_start) memcpy(J->dS0 + (size_t)bh * sz, dS, sizeof(float) * sz);
}

/* returns 0, or 1 when a thread could not allocate its workspace */
int attnlab_delta_chunk_bwd(const float *q, const float *k, const float *v, const float *beta, const float *g,
                            const float *starts, const float *saved, const float *dO, const float *dSf, float *dq,
                            float *dk, float *dv,
                            float *dbeta, float *dg, float *dS0, int b, int t, int h, int dk_, int dv_, int C,
                            int zero_start, float scale, int nthreads, void *sgemm) {
    const cjob_t J = {q, k, v, beta, g, dO, dSf, starts, saved, dq, dk, dv, dbeta, dg, dS0, b, t, h, dk_, dv_, C,
                      zero_start, scale, (sgemm_t)sgemm};
    const size_t lx = (size_t)dk_ + dv_;
    const size_t wsz = 5 * (size_t)C * C + 2 * (size_t)C * lx + 3 * (size_t)C * dv_ + 2 * (size_t)C * dk_ +
                       (size_t)dk_ * dv_ + 3 * (size_t)C;
    return over_heads(head_chunk_bwd, &J, b * h, wsz, nthreads);
}


/* ---- decayed linear attention, forward (attnlab.ops.decay) ------------------------------------------

   S_t = exp(g_t) S_{t-1} + k_t v_t^T, o_t = s S_t^T q_t (no gate: linear attention). Per chunk, with G the
   in-chunk cumulative log-decay and E_ij = exp(G_i - G_j):  O = s (gamma o Q S + lower(Q K^T o E) V) and
   S <- gamma_c S + (exp(G_c - G) o K)^T V: the delta rule's chunk forward without its triangular solve. */

typedef struct {
    const float *q, *k, *v, *g;
    float *o, *S;
    int b, t, h, dk, dv, C;
    int zero_start; /* S is zero on entry */
    float scale;
    sgemm_t sgemm;
} djob_t;

static void head_decay(const void *job, int bh, float *ws) {
    const djob_t *J = job;
    const int t = J->t, h = J->h, dk = J->dk, dv = J->dv, C = J->C, bi = bh / h, hi = bh % h;
    const int lk = h * dk, lv = h * dv;
    const sgemm_t f = J->sgemm;
    const float *q = J->q + ((size_t)bi * t * h + hi) * dk, *k = J->k + ((size_t)bi * t * h + hi) * dk;
    const float *v = J->v + ((size_t)bi * t * h + hi) * dv;
    const float *g = J->g ? J->g + (size_t)bi * t * h + hi : NULL;
    float *o = J->o + ((size_t)bi * t * h + hi) * dv, *S = J->S + (size_t)bh * dk * dv;
    float *P = ws, *Kd = P + C * C, *G = Kd + (size_t)C * dk, *E = G + C;
    for (int c0 = 0; c0 < t; c0 += C) {
        const int c = t - c0 < C ? t - c0 : C;
        const float *qc = q + (size_t)c0 * lk, *kc = k + (size_t)c0 * lk, *vc = v + (size_t)c0 * lv;
        float *oc = o + (size_t)c0 * lv;
        if (g) {
            float acc = 0.f;
            for (int i = 0; i < c; i++) { acc += g[(size_t)(c0 + i) * h]; G[i] = acc; }
        }
        lower_of(f, c, dk, 1.f, qc, lk, kc, lk, P, C); /* the lower triangle of Q K^T by halves */
        for (int i = 0; i < c; i++) {
            float *pi = P + (size_t)i * C;
            if (g) {
                const float Gi = G[i];
                #pragma omp simd
                for (int j = 0; j <= i; j++) E[j] = exp_le0(Gi - G[j]);
                #pragma omp simd
                for (int j = 0; j <= i; j++) pi[j] *= E[j];
            }
            for (int j = i + 1; j < c; j++) pi[j] = 0.f;
        }
        chunk_output(f, qc, lk, J->zero_start && c0 == 0 ? NULL : S, P, vc, lv, oc, lv, g ? G : NULL, c, C, dk, dv,
                     J->scale);
        if (g) {
            const float Gc = G[c - 1], gc = exp_le0(Gc);
            #pragma omp simd
            for (int i = 0; i < dk * dv; i++) S[i] *= gc;
            for (int i = 0; i < c; i++) {
                const float s = exp_le0(Gc - G[i]), *ki = kc + (size_t)i * lk;
                float *kd = Kd + (size_t)i * dk;
                #pragma omp simd
                for (int j = 0; j < dk; j++) kd[j] = s * ki[j];
            }
            gemm(f, 1, 0, dk, dv, c, 1.f, Kd, dk, vc, lv, 1.f, S, dv);
        } else {
            gemm(f, 1, 0, dk, dv, c, 1.f, kc, lk, vc, lv, 1.f, S, dv);
        }
    }
}

/* returns 0, or 1 when a thread could not allocate its workspace */
int attnlab_decay_chunk_fwd(const float *q, const float *k, const float *v, const float *g, float *o, float *S,
                            int b, int t, int h, int dk, int dv, int C, int zero_start, float scale, int nthreads,
                            void *sgemm) {
    const djob_t J = {q, k, v, g, o, S, b, t, h, dk, dv, C, zero_start, scale, (sgemm_t)sgemm};
    const size_t wsz = (size_t)C * C + (size_t)C * dk + 2 * (size_t)C;
    return over_heads(head_decay, &J, b * h, wsz, nthreads);
}
