/*
 * segdata._runs, the edge bit scans: bit c of a row's edge words is set where pixel c differs
 * from pixel c - 1 (horizontal edges) or from the pixel above (vertical edges). A row is compared
 * with the row above one vector test per 64 pixels (AVX2 where the CPU has it, chosen at import;
 * SSE2, which every x86-64 has; a byte loop on other machines, or where SEGDATA_NO_SIMD is
 * defined, to test that path), and its horizontal edges are recomputed only where a pixel changed.
 */
#include "runs.h"

/* 1 when the 32 bytes at p and q differ */
static inline int differ32(const uint8_t *p, const uint8_t *q)
{
    uint64_t x[4], y[4];
    memcpy(x, p, 32);
    memcpy(y, q, 32);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) != 0;
}

#if (defined(__SSE2__) || defined(_M_X64)) && !defined(SEGDATA_NO_SIMD) /* the define tests the other path */
#include <emmintrin.h>
#define HAVE_SSE2 1

/* 16 bits: element i of the 16 at a differs from element i of the 16 at b */
static inline uint64_t differ16(const uint8_t *a, const uint8_t *b, int size)
{
    __m128i eq;
    if (size == 1) {
        eq = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)a), _mm_loadu_si128((const __m128i *)b));
    } else {
        __m128i lo = _mm_cmpeq_epi16(_mm_loadu_si128((const __m128i *)a), _mm_loadu_si128((const __m128i *)b));
        __m128i hi = _mm_cmpeq_epi16(_mm_loadu_si128((const __m128i *)(a + 16)), _mm_loadu_si128((const __m128i *)(b + 16)));
        eq = _mm_packs_epi16(lo, hi); /* 0xFFFF -> 0xFF, 0 -> 0 */
    }
    return (uint64_t)(~_mm_movemask_epi8(eq) & 0xFFFF);
}
#endif

/* bits |= {c in [1, w): row[c] != row[c - 1]}; elements of `size` bytes (1 or 2) */
RUNS_INTERNAL void horizontal_edges(const uint8_t *row, size_t w, int size, uint64_t *bits)
{
    size_t c = 1;
#ifdef HAVE_SSE2
    for (; c < 16 && c < w; c++) /* the first block, which has no left neighbour at 0 */
        if (value_at(row, c, size) != value_at(row, c - 1, size))
            set_bit(bits, c);
    for (; c + 16 <= w; c += 16) /* c is a multiple of 16: the 16 bits stay in one word */
        bits[c >> 6] |= differ16(row + c * size, row + (c - 1) * size, size) << (c & 63);
#else
    size_t step = 32 / (size_t)size;
    while (c + step <= w) {
        if (differ32(row + c * size, row + (c - 1) * size))
            for (size_t e = c + step; c < e; c++) {
                if (value_at(row, c, size) != value_at(row, c - 1, size))
                    set_bit(bits, c);
            }
        else
            c += step;
    }
#endif
    for (; c < w; c++)
        if (value_at(row, c, size) != value_at(row, c - 1, size))
            set_bit(bits, c);
}

#ifdef HAVE_SSE2
/* 1 when the 64 elements of `size` bytes at a and b are all equal: one test per block */
static inline int equal64(const uint8_t *a, const uint8_t *b, int size)
{
    __m128i acc = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)a), _mm_loadu_si128((const __m128i *)b));
    for (int i = 16; i < 64 * size; i += 16)
        acc = _mm_and_si128(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(a + i)), _mm_loadu_si128((const __m128i *)(b + i))));
    return _mm_movemask_epi8(acc) == 0xFFFF;
}
#endif

#if defined(HAVE_SSE2) && (defined(__GNUC__) || defined(__clang__))
/* The same test with AVX2 (two 32-byte xors and one vptest per 64 bytes), for the edge scans'
 * AVX2 build, chosen at import where the CPU has it (see runs_cpu_init). */
#include <immintrin.h>
#define HAVE_AVX2_BUILD 1
__attribute__((target("avx2"))) static inline int equal64_avx2(const uint8_t *a, const uint8_t *b, int size)
{
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < 64 * size; i += 32)
        acc = _mm256_or_si256(acc, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a + i)),
                                                    _mm256_loadu_si256((const __m256i *)(b + i))));
    return _mm256_testz_si256(acc, acc);
}
static int use_avx2;
#endif

/* Row `row` below row `above`: vbits |= its vertical edges (when vbits is not NULL), and hbits,
 * which holds the horizontal edges of `above`, becomes those of `row`. An edge at c depends on
 * pixels c - 1 and c only, so it is recomputed only where one of them differs from the pixel
 * above; everywhere else it is the edge above. Blocks of 64 pixels equal to the block above (most
 * of a label map) cost one comparison. Returns 1 when the row differs from the row above. */
#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif
static ALWAYS_INLINE int update_edges(const uint8_t *row, const uint8_t *above, size_t w, int size, uint64_t *hbits,
                                      uint64_t *vbits, int avx2)
{
    size_t c = 0;
    unsigned carry = 0; /* pixel c - 1 differs from the pixel above it */
    int changed = 0;
#ifdef HAVE_SSE2
    for (; c + 64 <= w; c += 64) { /* one word of bits: four blocks of 16 pixels */
#ifdef HAVE_AVX2_BUILD
        int same = avx2 ? equal64_avx2(row + c * size, above + c * size, size) : equal64(row + c * size, above + c * size, size);
#else
        int same = equal64(row + c * size, above + c * size, size);
#endif
        if (!carry && same)
            continue; /* no vertical edge, the horizontal edges of the row above */
        uint64_t vm = differ16(row + c * size, above + c * size, size) |
                      differ16(row + (c + 16) * size, above + (c + 16) * size, size) << 16 |
                      differ16(row + (c + 32) * size, above + (c + 32) * size, size) << 32 |
                      differ16(row + (c + 48) * size, above + (c + 48) * size, size) << 48;
        changed |= vm != 0;
        if (vbits)
            vbits[c >> 6] |= vm;
        uint64_t need = vm | (vm << 1) | carry; /* pixel c or c - 1 differs from the one above */
        if (need) {
            /* at c = 0 the pixel "left" of column 0 is the previous row's last: masked off */
            const uint8_t *p = row + c * size, *q = p - size;
            uint64_t hm = differ16(p, q, size) | differ16(p + 16 * size, q + 16 * size, size) << 16 |
                          differ16(p + 32 * size, q + 32 * size, size) << 32 |
                          differ16(p + 48 * size, q + 48 * size, size) << 48;
            if (c == 0)
                hm &= ~(uint64_t)1;
            hbits[c >> 6] = (hbits[c >> 6] & ~need) | (hm & need);
        }
        carry = (unsigned)(vm >> 63);
    }
#endif
    for (; c < w; c++) {
        unsigned vd = value_at(row, c, size) != value_at(above, c, size);
        changed |= (int)vd;
        if (vd && vbits)
            set_bit(vbits, c);
        if (vd | carry) {
            uint64_t bit = (uint64_t)1 << (c & 63);
            if (c > 0 && value_at(row, c, size) != value_at(row, c - 1, size))
                hbits[c >> 6] |= bit;
            else
                hbits[c >> 6] &= ~bit;
        }
        carry = vd;
    }
    return changed;
}

/* 8- and 16-bit maps (vbits may be NULL: no vertical edges out), each in a default and an AVX2 build */
#define EDGE_KINDS(SUFFIX, ATTR, AVX2)                                                                         \
    ATTR static int update_edges_u8##SUFFIX(const uint8_t *r, const uint8_t *a, size_t w, uint64_t *h, uint64_t *v)  \
    {                                                                                                          \
        return update_edges(r, a, w, 1, h, v, AVX2);                                                           \
    }                                                                                                          \
    ATTR static int update_edges_u16##SUFFIX(const uint8_t *r, const uint8_t *a, size_t w, uint64_t *h, uint64_t *v) \
    {                                                                                                          \
        return update_edges(r, a, w, 2, h, v, AVX2);                                                           \
    }
EDGE_KINDS(, , 0)
#ifdef HAVE_AVX2_BUILD
EDGE_KINDS(_avx2, __attribute__((target("avx2"))), 1)
#endif

/* the edge scan for `size`-byte elements */
RUNS_INTERNAL EdgeFn edge_fn(int size)
{
#ifdef HAVE_AVX2_BUILD
    if (use_avx2)
        return size == 1 ? update_edges_u8_avx2 : update_edges_u16_avx2;
#endif
    return size == 1 ? update_edges_u8 : update_edges_u16;
}

/* which build of the edge scans edge_fn returns: called once, by PyInit__runs */
RUNS_INTERNAL void runs_cpu_init(void)
{
#ifdef HAVE_AVX2_BUILD
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2");
#endif
}
