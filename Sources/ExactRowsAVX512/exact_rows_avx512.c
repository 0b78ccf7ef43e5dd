// ExactRows' products on 512-bit registers. Each output element is computed exactly as
// the Swift kernels compute it (Sources/Kernels/ExactRows.swift): 64-column blocks as
// four 16-lane vectors in the format's lane order, one accumulator of fused multiply-adds,
// folded in halves, the tail added in column order. A 16-lane Swift vector is two AVX2
// registers with the same per-lane arithmetic, so both give the same bits; this file has
// twice the register width and twice the registers to block with, widens E4M3 by another
// power of two (the same products: FP8.activationFactor), and for rows of one block keeps
// sixteen rows' lanes in a register, adding them in the fold's pairs.
#include "ExactRowsAVX512.h"

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

bool exact_avx512_supported(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return false;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    // The OS saves SSE, AVX, opmask and both halves of the ZMM state.
    if ((lo & 0xE6) != 0xE6) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL);
}

// VL lets 128- and 256-bit operations (the folds, a tile's four-row store) use registers
// 16-31; without it they are confined to 0-15, and the compiler spilled three of a prefill
// tile's 24 accumulators to the stack in its inner loop (the tiles ran 18% slower).
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl"))), apply_to = function)

#define INLINE static inline __attribute__((always_inline))

enum {
    block = 64,           // columns per block: four vectors of 16
    slice = 1024,         // columns per slice: 1024 measured 20% faster than 256 on 512 × 1024 (4 KB per row in L1)
    streamed_l2 = 1 << 20, // bytes of rows one eight-token pass leaves in L2 for the next
};

/// Lanes of `u` (E4M3 bits placed by `decode_block`, bit 27 set) whose exponent is 0 as
/// the value times 2^-104: sign · (1 + m/8) · 2^-110 − sign · 2^-110 = sign · m · 2^-113.
INLINE __m512i e4m3_exponent_zero(__m512i u) {
    __mmask16 zero = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x07800000));
    __m512i high = _mm512_mask_or_epi32(u, zero, u, _mm512_set1_epi32(0x00800000));
    __m512i lead = _mm512_ternarylogic_epi32(u, _mm512_set1_epi32((int)0x80000000u), _mm512_set1_epi32(0x08800000), 0xEA);
    return _mm512_castps_si512(_mm512_mask_sub_ps(_mm512_castsi512_ps(u), zero, _mm512_castsi512_ps(high), _mm512_castsi512_ps(lead)));
}

/// Bytes per stored weight.
INLINE long format_bytes(exact_format f) { return f == exact_f32 ? 4 : f == exact_bf16 ? 2 : 1; }

/// Row `r`'s 64 columns from `c` as four f32 vectors in the format's lane order.
INLINE void decode_block(exact_format f, const void *w, long cols, long r, long c, __m512 out[4]) {
    switch (f) {
    case exact_f32: {
        const float *p = (const float *)w + r * cols + c;
        for (int q = 0; q < 4; q++) out[q] = _mm512_loadu_ps(p + 16 * q);
        break;
    }
    case exact_bf16: {
        // Two weights per 32-bit lane: the even one is the lane shifted left by 16, the odd
        // one the lane with its low half cleared.
        const uint16_t *p = (const uint16_t *)w + r * cols + c;
        const __m512i high = _mm512_set1_epi32((int)0xFFFF0000u);
        for (int h = 0; h < 2; h++) {
            __m512i v = _mm512_loadu_si512(p + 32 * h);
            out[2 * h] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            out[2 * h + 1] = _mm512_castsi512_ps(_mm512_and_si512(v, high));
        }
        break;
    }
    case exact_e4m3: {
        // Four weights per lane, byte k to vector k: sign in bit 31, exponent and mantissa
        // in bits 20-26, and bit 27 set, which makes the value times 2^-104 for exponents
        // 1-15 (the Swift kernels leave bit 27 clear, 2^-120, and take the activations with
        // 2^16 more: the same products). An arithmetic shift of 16-bit words by 4 puts each
        // word's high byte there in its half; byte shifts (on the shuffle port, not the shift
        // port) bring low bytes and low halves up; one ternary-logic operation masks and sets
        // bit 27.
        const uint8_t *p = (const uint8_t *)w + r * cols + c;
        const __m512i mask = _mm512_set1_epi32((int)0x87F00000u), bias = _mm512_set1_epi32(0x08000000);
        __m512i v = _mm512_loadu_si512(p);
        __m512i odd = _mm512_srai_epi16(v, 4), even = _mm512_srai_epi16(_mm512_bslli_epi128(v, 1), 4);
        __m512i u[4] = {_mm512_ternarylogic_epi32(_mm512_bslli_epi128(even, 2), mask, bias, 0xEA),
                        _mm512_ternarylogic_epi32(_mm512_bslli_epi128(odd, 2), mask, bias, 0xEA),
                        _mm512_ternarylogic_epi32(even, mask, bias, 0xEA), _mm512_ternarylogic_epi32(odd, mask, bias, 0xEA)};
        // Zeros and subnormals (exponent 0), rare in weights, would read as 2^-111 · (1 + m/8):
        // those lanes take the exponent 17 and lose its leading one, by a subtraction of
        // normal floats. A subnormal f32 would have cost a microcode assist in every
        // multiply-add it entered.
        if (_mm512_testn_epi8_mask(v, _mm512_set1_epi8(0x78)))
            for (int q = 0; q < 4; q++) u[q] = e4m3_exponent_zero(u[q]);
        for (int q = 0; q < 4; q++) out[q] = _mm512_castsi512_ps(u[q]);
        break;
    }
    }
}

/// One tail column of row `r`, decoded like the blocks.
INLINE float element(exact_format f, const void *w, long cols, long r, long c) {
    uint32_t bits;
    switch (f) {
    case exact_f32: return ((const float *)w)[r * cols + c];
    case exact_bf16: bits = (uint32_t)((const uint16_t *)w)[r * cols + c] << 16; break;
    default: {
        uint32_t b = ((const uint8_t *)w)[r * cols + c];
        bits = ((b & 0x80u) << 24) | ((b & 0x7Fu) << 20) | 0x08000000u;
        if (b & 0x78u) break;
        // As e4m3_exponent_zero: the same subtraction, so zeros come out as +0 there too.
        uint32_t high = bits | 0x00800000u, lead = (bits & 0x80000000u) | 0x08800000u;
        float h, l;
        memcpy(&h, &high, 4);
        memcpy(&l, &lead, 4);
        return h - l;
    }
    }
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/// The one horizontal sum order: 16 → 8 → 4 → 2 → 1.
INLINE float reduce(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(c) + _mm_cvtss_f32(_mm_shuffle_ps(c, c, 1));
}

/// `reduce` of sixteen vectors at once, the sums in order: the same additions of the same
/// pairs (lane j + lane j + 8, then + 4, + 2, + 1), two vectors' halves to a register, so
/// four steps of shuffles and adds replace sixteen horizontal folds.
INLINE __m512 reduce16(const __m512 v[16]) {
    __m512 a[8], b[4], c[2];
    // Vector 2k's fold to 8 lanes in lanes 0-7, 2k + 1's in lanes 8-15.
    for (int k = 0; k < 8; k++)
        a[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // Vector 4m + l's fold to 4 lanes in 128-bit lane l.
    for (int m = 0; m < 4; m++)
        b[m] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    // In 128-bit lane l: vector 8p + l's two lanes, then 8p + 4 + l's.
    for (int p = 0; p < 2; p++)
        c[p] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * p], b[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(b[2 * p], b[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // Lane 4l + k holds vector 4k + l's sum; the permute puts vector i in lane i.
    __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), d);
}

/// The sums of `n` accumulators into `sums`, sixteen at a time by `reduce16`; fewer than
/// twelve one by one, where padding to sixteen would cost more than it shares.
INLINE void fold(const __m512 *v, int n, float *sums) {
    if (n < 12) {
        for (int k = 0; k < n; k++) sums[k] = reduce(v[k]);
        return;
    }
    for (int g = 0; g < n; g += 16) {
        __m512 b[16];
        for (int k = 0; k < 16; k++) b[k] = g + k < n ? v[g + k] : _mm512_setzero_ps();
        _mm512_store_ps(sums + g, reduce16(b));
    }
}

/// Rows r, r + gap, …, r + (R - 1) · gap against tokens 0..T, each block decoded once in
/// registers for all T tokens. Row i reads its activations at x[i], or all at x[0] when `shared`.
INLINE void streamed(exact_format f, int R, int T, bool shared, const void *w, long cols, long r, long gap, const float *const *x,
                     long ldx, float *y, long ldy, float factor) {
    long full = cols - cols % block;
    __m512 acc[16];
    for (int k = 0; k < R * T; k++) acc[k] = _mm512_setzero_ps();
    const long bytes = format_bytes(f);
    const char *ahead = (const char *)w + (r + (gap == 1 ? R : 1)) * cols * bytes;
    for (long c = 0; c < full; c += block) {
        // The same columns of each stream's next row (of the next R rows when the rows are
        // neighbours): a product's rows are a few kilobytes each, too short for the hardware
        // prefetcher to run far enough ahead on its own.
        for (int i = 0; i < R; i++)
            for (long o = 0; o < block * bytes; o += 64) _mm_prefetch(ahead + (i * gap * cols + c) * bytes + o, _MM_HINT_T0);
        __m512 wv[4][4];
        for (int i = 0; i < R; i++) decode_block(f, w, cols, r + i * gap, c, wv[i]);
        for (int t = 0; t < T; t++)
            for (int q = 0; q < 4; q++) {
                __m512 xv = _mm512_loadu_ps(x[0] + t * ldx + c + 16 * q);
                for (int i = 0; i < R; i++) {
                    if (!shared && i > 0) xv = _mm512_loadu_ps(x[i] + t * ldx + c + 16 * q);
                    acc[i * T + t] = _mm512_fmadd_ps(wv[i][q], xv, acc[i * T + t]);
                }
            }
    }
    float sums[16] __attribute__((aligned(64)));
    fold(acc, R * T, sums);
    for (int i = 0; i < R; i++) {
        const float *xi = x[shared ? 0 : i];
        for (int t = 0; t < T; t++) {
            float s = sums[i * T + t];
            for (long c = full; c < cols; c++) s = __builtin_fmaf(element(f, w, cols, r + i * gap, c), xi[t * ldx + c], s);
            y[t * ldy + r + i * gap] = s * factor;
        }
    }
}

#define STREAMED_T(R, T) case T: streamed(f, R, T, shared, w, cols, r, gap, x, ldx, y, ldy, factor); break;

/// `streamed` with its register block chosen at run time (up to 4 rows × 3 tokens or
/// 2 rows × 8 tokens: the accumulators and one block's decoded rows fill the 32 registers).
INLINE void streamed_tokens(exact_format f, int R, int T, bool shared, const void *w, long cols, long r, long gap,
                            const float *const *x, long ldx, float *y, long ldy, float factor) {
    switch (R) {
    case 4: switch (T) { STREAMED_T(4, 1) STREAMED_T(4, 2) STREAMED_T(4, 3) } break;
    case 2: switch (T) { STREAMED_T(2, 1) STREAMED_T(2, 2) STREAMED_T(2, 3) STREAMED_T(2, 4) STREAMED_T(2, 5) STREAMED_T(2, 6) STREAMED_T(2, 7) STREAMED_T(2, 8) } break;
    default: switch (T) { STREAMED_T(1, 1) STREAMED_T(1, 2) STREAMED_T(1, 3) STREAMED_T(1, 4) STREAMED_T(1, 5) STREAMED_T(1, 6) STREAMED_T(1, 7) STREAMED_T(1, 8) } break;
    }
}

/// `streamed_tokens` for rows [r0, r1) (each with its partners `gap` apart) over all
/// `tokens` tokens, eight at a time (the register block's limit with two rows): each eight
/// tokens meet every row of the range before the next eight.
INLINE void streamed_groups(exact_format f, int R, long tokens, const void *w, long cols, long r0, long r1, long gap,
                            const float *x, long ldx, float *y, long ldy, float factor) {
    for (long t = 0; t < tokens; t += 8) {
        int T = tokens - t < 8 ? (int)(tokens - t) : 8;
        const float *xt = x + t * ldx;
        for (long r = r0; r < r1; r++) streamed_tokens(f, R, T, true, w, cols, r, gap, &xt, ldx, y + t * ldy, ldy, factor);
    }
}

/// Where a tile's results go once its last slice is done: `y` (offset to the tile's first
/// token and row), with the row's tail columns from `full` to `cols` and the factor.
typedef struct {
    float *y;
    long ldy, full, cols;
    float factor;
} tile_out;

/// Columns [k0, k1) of R decoded rows (`stride` apart) against T tokens, continuing the
/// accumulators parked at `acc` (token t of row i at i · acc_stride + 16 t), or starting
/// them from zero at column 0. With `out`, the slice is the last: each accumulator is
/// folded, its tail added and the result stored, never parked. Each 16 columns also fetch
/// a line of `ahead` into L2, from line `line` while below `lines`.
INLINE void tile(int R, int T, const float *rows, long stride, long k0, long k1, const float *x, long ldx,
                 float *acc, long acc_stride, const tile_out *out, const char *ahead, long line, long lines) {
    __m512 a[24];
    for (int i = 0; i < R; i++)
        for (int t = 0; t < T; t++) a[t * R + i] = k0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(acc + i * acc_stride + 16 * t);
    for (long c = k0; c < k1; c += 16, line++) {
        if (line < lines) _mm_prefetch(ahead + 64 * line, _MM_HINT_T1);
        __m512 wv[4];
        for (int i = 0; i < R; i++) wv[i] = _mm512_loadu_ps(rows + i * stride + c);
        for (int t = 0; t < T; t++) {
            __m512 xv = _mm512_loadu_ps(x + t * ldx + c);
            for (int i = 0; i < R; i++) a[t * R + i] = _mm512_fmadd_ps(wv[i], xv, a[t * R + i]);
        }
    }
    if (!out) {
        for (int i = 0; i < R; i++)
            for (int t = 0; t < T; t++) _mm512_store_ps(acc + i * acc_stride + 16 * t, a[t * R + i]);
        return;
    }
    float sums[32] __attribute__((aligned(64)));
    fold(a, R * T, sums);
    for (int t = 0; t < T; t++) {
        float *s = sums + t * R;
        for (int i = 0; i < R; i++)
            for (long c = out->full; c < out->cols; c++) s[i] = __builtin_fmaf(rows[i * stride + c], x[t * ldx + c], s[i]);
        // A token's four rows are neighbours in `y`: one store, the same products.
        if (R == 4) _mm_storeu_ps(out->y + t * out->ldy, _mm_mul_ps(_mm_load_ps(s), _mm_set1_ps(out->factor)));
        else
            for (int i = 0; i < R; i++) out->y[t * out->ldy + i] = s[i] * out->factor;
    }
}

#define TILE_T(R, T) case T: tile(R, T, rows, stride, k0, k1, x, ldx, acc, acc_stride, out, ahead, line, lines); break;
#define TILE_R(R)                                                                                                   \
    case R:                                                                                                         \
        switch (T) { TILE_T(R, 1) TILE_T(R, 2) TILE_T(R, 3) TILE_T(R, 4) TILE_T(R, 5) TILE_T(R, 6) }               \
        break;

/// `tile` with its register block chosen at run time (4 rows × 6 tokens but at the edges).
static void any_tile(int R, int T, const float *rows, long stride, long k0, long k1, const float *x, long ldx,
                     float *acc, long acc_stride, const tile_out *out, const char *ahead, long line, long lines) {
    switch (R) { TILE_R(1) TILE_R(2) TILE_R(3) TILE_R(4) }
}

/// Row `r` as f32, blocks then tail, as `decode_block` and `element` give them.
INLINE void decode_row(exact_format f, const void *w, long cols, long r, float *out) {
    long full = cols - cols % block;
    for (long c = 0; c < full; c += block) {
        __m512 v[4];
        decode_block(f, w, cols, r, c, v);
        for (int q = 0; q < 4; q++) _mm512_storeu_ps(out + c + 16 * q, v[q]);
    }
    for (long c = full; c < cols; c++) out[c] = element(f, w, cols, r, c);
}

/// Lane `l`'s sum of a one-block product: the four multiply-adds of `tile`'s accumulator
/// lane, for sixteen rows at once (their weights transposed into `wt`, column k in wt[k]).
INLINE __m512 lane_sum(const __m512 *wt, const float *x, int l) {
    __m512 a = _mm512_setzero_ps();
    for (int q = 0; q < 4; q++) a = _mm512_fmadd_ps(wt[16 * q + l], _mm512_set1_ps(x[16 * q + l]), a);
    return a;
}

/// Rows of one 64-column block (MLA's per-head products) against many tokens: sixteen rows
/// to a register, so a token's sixteen results come out of lane sums added in `reduce`'s
/// pairs (l + 8, then + 4, + 2, + 1) as whole vectors, with no horizontal fold. Folding each
/// row's accumulator cost more than its four multiply-adds.
INLINE void prefill_one_block(exact_format f, const void *w, long r0, long n, const float *x, long ldx, float *y, long ldy,
                              long tokens, float factor) {
    float rows[16 * block] __attribute__((aligned(64)));
    __m512 wt[block];
    for (long i = 0; i < 16; i++) {
        if (i < n) decode_row(f, w, block, r0 + i, rows + i * block);
        else memset(rows + i * block, 0, sizeof(float) * block);
    }
    const __m512i stride = _mm512_setr_epi32(0, 64, 128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960);
    for (int k = 0; k < block; k++) wt[k] = _mm512_i32gather_ps(stride, rows + k, 4);
    const __m512 scale = _mm512_set1_ps(factor);
    const __mmask16 valid = (__mmask16)((1u << n) - 1);
    for (long t = 0; t < tokens; t++) {
        const float *xt = x + t * ldx;
        __m512 b0 = _mm512_add_ps(_mm512_add_ps(lane_sum(wt, xt, 0), lane_sum(wt, xt, 8)), _mm512_add_ps(lane_sum(wt, xt, 4), lane_sum(wt, xt, 12)));
        __m512 b2 = _mm512_add_ps(_mm512_add_ps(lane_sum(wt, xt, 2), lane_sum(wt, xt, 10)), _mm512_add_ps(lane_sum(wt, xt, 6), lane_sum(wt, xt, 14)));
        __m512 b1 = _mm512_add_ps(_mm512_add_ps(lane_sum(wt, xt, 1), lane_sum(wt, xt, 9)), _mm512_add_ps(lane_sum(wt, xt, 5), lane_sum(wt, xt, 13)));
        __m512 b3 = _mm512_add_ps(_mm512_add_ps(lane_sum(wt, xt, 3), lane_sum(wt, xt, 11)), _mm512_add_ps(lane_sum(wt, xt, 7), lane_sum(wt, xt, 15)));
        __m512 sum = _mm512_add_ps(_mm512_add_ps(b0, b2), _mm512_add_ps(b1, b3));
        _mm512_mask_storeu_ps(y + t * ldy + r0, valid, _mm512_mul_ps(sum, scale));
    }
}

/// More than EXACT_AVX512_STREAMED_TOKENS tokens: rows are decoded EXACT_AVX512_CHUNK_ROWS at
/// a time and shared by every token; a slice of columns at a time keeps a tile's rows and
/// tokens near. While a chunk's tiles run, they fetch the next chunk's stored rows into L2,
/// a line per 16 columns, so decoding it does not wait on memory.
INLINE void prefill(exact_format f, const void *w, long cols, long row_begin, long row_end, const float *x, long ldx,
                    float *y, long ldy, long tokens, float factor, float *decoded, float *partial) {
    long full = cols - cols % block;
    const long bytes = format_bytes(f);
    for (long start = row_begin; start < row_end; start += EXACT_AVX512_CHUNK_ROWS) {
        long n = row_end - start < EXACT_AVX512_CHUNK_ROWS ? row_end - start : EXACT_AVX512_CHUNK_ROWS;
        const float *rows = decoded;
        if (f == exact_f32) rows = (const float *)w + start * cols;
        else
            for (long i = 0; i < n; i++) decode_row(f, w, cols, start + i, decoded + i * cols);
        long next = row_end - (start + n) < EXACT_AVX512_CHUNK_ROWS ? row_end - (start + n) : EXACT_AVX512_CHUNK_ROWS;
        const char *ahead = (const char *)w + (start + n) * cols * bytes;
        long line = 0, lines = (next * cols * bytes + 63) / 64;
        for (long k0 = 0; k0 < full; k0 += slice) {
            long k1 = k0 + slice < full ? k0 + slice : full;
            for (long t = 0; t < tokens; t += 6) {
                int T = tokens - t < 6 ? (int)(tokens - t) : 6;
                for (long i = 0; i < n; i += 4) {
                    int R = n - i < 4 ? (int)(n - i) : 4;
                    tile_out out = {y + t * ldy + start + i, ldy, full, cols, factor};
                    any_tile(R, T, rows + i * cols, cols, k0, k1, x + t * ldx, ldx, partial + (i * tokens + t) * 16, tokens * 16,
                             k1 == full ? &out : 0, ahead, line, lines);
                    line += (k1 - k0) / 16;
                }
            }
        }
        if (full > 0) continue;
        // Fewer columns than a block: the tail alone, column by column.
        for (long i = 0; i < n; i++)
            for (long t = 0; t < tokens; t++) {
                float s = 0.0f;
                for (long c = 0; c < cols; c++) s = __builtin_fmaf(rows[i * cols + c], x[t * ldx + c], s);
                y[t * ldy + start + i] = s * factor;
            }
    }
}

/// Row `r`'s activations: its row tile's, counted from the tile of `row_begin`.
INLINE const float *tile_x(exact_input in, long row_begin, long r) {
    if (!in.tile_rows) return in.x;
    return in.x + ((in.tile_origin + r) / in.tile_rows - (in.tile_origin + row_begin) / in.tile_rows) * in.tile_stride;
}

/// The product on the path its token count and width take. Activations by row tile come
/// only with up to EXACT_AVX512_TILED_TOKENS tokens, the four-stream path; the others read `in.x`.
INLINE void rows_of(exact_format f, const void *w, long cols, long row_begin, long row_end, exact_input in,
                    float *y, long ldy, long tokens, float factor, float *decoded, float *partial) {
    const float *x = in.x;
    const long ldx = in.ldx;
    if (tokens > EXACT_AVX512_STREAMED_TOKENS && cols == block) {
        for (long start = row_begin; start < row_end; start += 16)
            prefill_one_block(f, w, start, row_end - start < 16 ? row_end - start : 16, x, ldx, y, ldy, tokens, factor);
        return;
    }
    if (exact_avx512_tiles(tokens, cols)) {
        prefill(f, w, cols, row_begin, row_end, x, ldx, y, ldy, tokens, factor, decoded, partial);
        return;
    }
    if (tokens <= 3) {
        // Four rows stream at once, each block decoded once for all tokens (a block per token
        // gave half the rate at two and three tokens). The four come from the four quarters
        // of the range, so each is a sequential stream the hardware prefetcher follows; four
        // neighbouring rows interleaved four streams within one 4 KB page, and the software
        // prefetches that made up for it waited on the L1's fill buffers.
        long quarter = (row_end - row_begin) / 4;
        for (long r = row_begin; r < row_begin + quarter; r++) {
            const float *xs[4];
            for (int i = 0; i < 4; i++) xs[i] = tile_x(in, row_begin, r + i * quarter);
            // Two instances: rows of one tile load each token's activations once for all four.
            if (in.tile_rows) streamed_tokens(f, 4, (int)tokens, false, w, cols, r, quarter, xs, ldx, y, ldy, factor);
            else streamed_tokens(f, 4, (int)tokens, true, w, cols, r, quarter, xs, ldx, y, ldy, factor);
        }
        for (long r = row_begin + 4 * quarter; r < row_end; r++) {
            const float *xr = tile_x(in, row_begin, r);
            streamed_tokens(f, 1, (int)tokens, true, w, cols, r, 1, &xr, ldx, y, ldy, factor);
        }
        return;
    }
    // Four to sixteen tokens (32 on wide rows): two rows at a time, one from each half of the
    // range, for the same reason: neighbouring rows made one stream, and bf16 rows streamed
    // from memory ran 1.22-1.33x faster alone as two, 1.05-1.12x in the engine.
    // A row pair takes its eight-token passes in turn, reading the pair back from L1. When the
    // activations outgrow L1, each pass would read them all back from L2 for every pair:
    // each eight tokens then meet every pair of a block of rows that stays in L2, so a pass's
    // activations stay in L1 and only the rows come back from L2 (one core, bf16 512 × 1024
    // streamed from memory: 1.15x at 12 tokens, 1.35x at 16).
    long half = (row_end - row_begin) / 2, pairs = 1;
    if (tokens > 8 && tokens * cols * (long)sizeof(float) > EXACT_AVX512_L1_BYTES) pairs = streamed_l2 / (2 * cols * format_bytes(f));
    if (pairs < 1) pairs = 1;
    for (long b = row_begin; b < row_begin + half; b += pairs)
        streamed_groups(f, 2, tokens, w, cols, b, b + pairs < row_begin + half ? b + pairs : row_begin + half, half, x, ldx, y, ldy, factor);
    if ((row_end - row_begin) % 2) streamed_groups(f, 1, tokens, w, cols, row_end - 1, row_end, 1, x, ldx, y, ldy, factor);
}

void exact_avx512_rows(exact_format format, const void *w, long cols, long row_begin, long row_end, exact_input x,
                       float *y, long ldy, long tokens, float factor, float *decoded, float *partial) {
    switch (format) {
    case exact_f32: rows_of(exact_f32, w, cols, row_begin, row_end, x, y, ldy, tokens, factor, decoded, partial); break;
    case exact_bf16: rows_of(exact_bf16, w, cols, row_begin, row_end, x, y, ldy, tokens, factor, decoded, partial); break;
    case exact_e4m3: rows_of(exact_e4m3, w, cols, row_begin, row_end, x, y, ldy, tokens, factor, decoded, partial); break;
    }
}

void exact_avx512_gather(const float *x, long cols, int per_lane, float factor, float *out) {
    const __m512 f = _mm512_set1_ps(factor);
    long c = 0;
    if (per_lane == 2) {
        // One two-source permute per vector: lane i of vector k is column 2i + k of each 32.
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        for (; c + block <= cols; c += block)
            for (long h = c; h < c + block; h += 32) {
                __m512 a = _mm512_loadu_ps(x + h), b = _mm512_loadu_ps(x + h + 16);
                _mm512_storeu_ps(out + h, _mm512_mul_ps(_mm512_permutex2var_ps(a, even, b), f));
                _mm512_storeu_ps(out + h + 16, _mm512_mul_ps(_mm512_permutex2var_ps(a, odd, b), f));
            }
    } else {
        // Lane i of vector k is column 4i + k of the 64: lanes 0-7 come from the first 32
        // columns, lanes 8-15 from the next 32, each half by one two-source permute.
        const __m512i stride4 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
        for (; c + block <= cols; c += block) {
            __m512 a0 = _mm512_loadu_ps(x + c), a1 = _mm512_loadu_ps(x + c + 16);
            __m512 a2 = _mm512_loadu_ps(x + c + 32), a3 = _mm512_loadu_ps(x + c + 48);
            for (int k = 0; k < 4; k++) {
                __m512i idx = _mm512_add_epi32(stride4, _mm512_set1_epi32(k));
                __m512 low = _mm512_permutex2var_ps(a0, idx, a1), high = _mm512_permutex2var_ps(a2, idx, a3);
                __m512 v = _mm512_shuffle_f32x4(low, high, _MM_SHUFFLE(1, 0, 1, 0));
                _mm512_storeu_ps(out + c + 16 * k, _mm512_mul_ps(v, f));
            }
        }
    }
    for (; c < cols; c++) out[c] = x[c] * factor;
}

float exact_avx512_fma_chains(long iterations, float seed) {
    // x ← x · m + c converges, so nothing overflows or turns subnormal.
    __m512 a[EXACT_AVX512_FMA_CHAINS];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(seed * 1e-6f);
    for (int i = 0; i < EXACT_AVX512_FMA_CHAINS; i++) a[i] = _mm512_set1_ps(seed + (float)i);
    for (long k = 0; k < iterations; k++)
        for (int i = 0; i < EXACT_AVX512_FMA_CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < EXACT_AVX512_FMA_CHAINS; i++) s = _mm512_add_ps(s, a[i]);
    return reduce(s);
}

#pragma clang attribute pop
