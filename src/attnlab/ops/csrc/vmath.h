/* e^x for x <= 0 and the sigmoid in float32, branch-free so that loops over them vectorise; shared by the kernels
   in this folder. */
#ifndef ATTNLAB_VMATH_H
#define ATTNLAB_VMATH_H

/* e^x for x <= 0 (the delta rule's in-chunk decays, SwiGLU's sigmoid), to ~1 ulp: x = n ln2 + r with
   |r| <= ln2 / 2, a degree-7 Taylor polynomial in r, times 2^n built from the exponent bits. Branch-free so
   that the loops over it vectorise (libm's expf does not without -ffast-math); below -87.3 it returns ~1e-38,
   not 0. */
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
    const union { int i; float f; } scale = {.i = ((int)n + 127) << 23};
    return p * scale.f;
}

/* sigmoid from e^-|x| <= 1: 1 / (1 + e) for x >= 0, e / (1 + e) below */
static inline float sigmoid(float x) {
    const float e = exp_le0(x < 0.f ? x : -x);
    return (x < 0.f ? e : 1.f) / (1.f + e);
}

#endif
