#ifndef EXACT_ROWS_AVX512_H
#define EXACT_ROWS_AVX512_H

#include <stdbool.h>
#include <stdint.h>

/// The weight formats of the exact products, as `ExactRows` lays them out.
typedef enum {
    exact_f32 = 0,
    exact_bf16 = 1,
    exact_e4m3 = 2,
} exact_format;

/// Up to this many tokens decode weights in registers as they stream them; more decode a
/// few rows to f32 once and share them (and need `decoded` and `partial`).
#define EXACT_AVX512_STREAMED_TOKENS 16

/// Rows decoded to f32 at a time above that.
#define EXACT_AVX512_CHUNK_ROWS 12

/// Bytes of a product's working set (decoded rows, or streamed activations) that stay in a
/// 48 KB L1 beside what streams through it.
#define EXACT_AVX512_L1_BYTES (32L << 10)

/// Up to this many tokens also stream rows too wide for their EXACT_AVX512_CHUNK_ROWS decoded
/// copies to fit in EXACT_AVX512_L1_BYTES (more than 682 columns), where tiles read their
/// rows back from L2: a prompt's routed experts with 17-32 tokens.
#define EXACT_AVX512_WIDE_STREAMED_TOKENS 32

/// Whether `exact_avx512_rows` multiplies `tokens` tokens by rows `cols` wide in register
/// tiles over decoded rows (and needs `decoded` and `partial`), rather than streaming the rows.
static inline bool exact_avx512_tiles(long tokens, long cols) {
    if (tokens <= EXACT_AVX512_STREAMED_TOKENS) return false;
    return tokens > EXACT_AVX512_WIDE_STREAMED_TOKENS || cols * EXACT_AVX512_CHUNK_ROWS * (long)sizeof(float) <= EXACT_AVX512_L1_BYTES;
}

/// True when this CPU and OS run AVX-512F, BW and VL (the only extensions these kernels use).
bool exact_avx512_supported(void);

/// Up to this many tokens, a product's activations may differ by row tile (`exact_input`).
#define EXACT_AVX512_TILED_TOKENS 3

/// The activations of a product, prepared in the format's lane order: token t's at
/// `x + t * ldx`. With `tile_rows` > 0 (at most EXACT_AVX512_TILED_TOKENS tokens), each tile
/// of `tile_rows` rows has its own (an FP8 tile's column scales are folded into them): row r
/// is in tile (tile_origin + r) / tile_rows, and tile k after row_begin's reads them at
/// `x + k * tile_stride`. One call then streams a decode step's share of many tiles: a call
/// per tile started four streams per 128 rows, 900 times a step.
typedef struct {
    const float *x;
    long ldx;
    long tile_rows, tile_origin, tile_stride;
} exact_input;

/// `y[t * ldy + r] = factor · Σ_c w[r, c] · x[t * ldx + c]` for rows [row_begin, row_end)
/// and `tokens` tokens, in ExactRows' one order (the Swift kernels' bits, 16 lanes per
/// 512-bit register). `decoded` holds at least EXACT_AVX512_CHUNK_ROWS · cols floats and
/// `partial` EXACT_AVX512_CHUNK_ROWS · tokens · 16, both 64-byte aligned; they are used only
/// when `exact_avx512_tiles`.
void exact_avx512_rows(exact_format format, const void *w, long cols, long row_begin, long row_end, exact_input x,
                       float *y, long ldy, long tokens, float factor, float *decoded, float *partial);

/// `out = x · factor` as ExactRows prepares activations: whole 64-column blocks in lane
/// order (per_lane 2 or 4; in each 16 · per_lane columns, column per_lane · i + k goes to
/// 16 · k + i), the ragged tail as it is. LaneOrder's gather with permutes instead of one
/// element at a time: the same products, so the same bits.
void exact_avx512_gather(const float *x, long cols, int per_lane, float factor, float *out);

/// Independent chains of `exact_avx512_fma_chains`: they cover the 4-cycle latency of two
/// FMA units with room to spare.
#define EXACT_AVX512_FMA_CHAINS 12

/// `iterations` steps of EXACT_AVX512_FMA_CHAINS independent 16-lane fused multiply-add
/// chains (2 · 16 FLOP per chain and step); the returned sum keeps the work from being
/// optimised away.
float exact_avx512_fma_chains(long iterations, float seed);

#endif
