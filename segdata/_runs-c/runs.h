/*
 * segdata/_runs-c/runs.h: what the files of the segdata._runs extension share (private, not
 * installed): the records (Vec, Map, Scan, ClassPair), the bit helpers the hot loops inline
 * (bit scans, popcount prefixes, the horizontal dilation of a row of marks), the x86-64
 * function-multiversioning macros, and the functions one file calls in another.
 *
 * The files, by layer (see module.c for what the extension does and its conventions):
 * - edges.c      the edge bit scans: horizontal and vertical edges of a row, SSE2 / AVX2 paths;
 * - scan.c       the run pass: runs of all maps and the bit-packed boundary band, then per-run
 *                pixel and band counts (joint_runs; count_pair when K >= 64 or no band);
 * - stream.c     count_pair's streamed sweep for 0 <= K < 64 (a ring of rows, nothing image-sized);
 * - breakdown.c  the breakdown rules on the table of segment pairs, and the class pairs;
 * - module.c     the Python module: argument parsing, buffers, PyInit.
 * The folder's name is not a Python identifier on purpose: a folder `segdata/_runs/` would be
 * imported as a namespace package `segdata._runs` wherever the compiled extension is missing.
 */
#ifndef SEGDATA_RUNS_H
#define SEGDATA_RUNS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MAPS 16

/* functions shared between the files: not exported from the extension */
#if defined(__GNUC__) || defined(__clang__)
#define RUNS_INTERNAL __attribute__((visibility("hidden")))
#else
#define RUNS_INTERNAL
#endif

#if defined(_MSC_VER)
#include <intrin.h>
static inline int ctz64(uint64_t x)
{
    unsigned long i;
    _BitScanForward64(&i, x);
    return (int)i;
}
static inline int clz64(uint64_t x)
{
    unsigned long i;
    _BitScanReverse64(&i, x);
    return 63 - (int)i;
}
#else
static inline int ctz64(uint64_t x) { return __builtin_ctzll(x); }
static inline int clz64(uint64_t x) { return __builtin_clzll(x); }
#endif

/* bit count without a library call (x86-64's baseline has no popcnt instruction) */
static inline int popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}

typedef struct {
    int64_t *data;
    size_t len, cap;
} Vec;

/* Walks the set bits of a row of `words` words: x holds the bits of word *j not yet taken.
 * Returns 1 with the next bit's column in *c, or 0 at the end of the row. */
static inline int next_edge(const uint64_t *bits, size_t words, size_t *j, uint64_t *x, size_t *c)
{
    while (!*x && ++*j < words)
        *x = bits[*j];
    if (!*x)
        return 0;
    *c = *j * 64 + (size_t)ctz64(*x);
    *x &= *x - 1;
    return 1;
}

static inline void set_bit(uint64_t *bits, size_t c) { bits[c >> 6] |= (uint64_t)1 << (c & 63); }

static inline unsigned value_at(const uint8_t *p, size_t c, int size)
{
    if (size == 1)
        return p[c];
    uint16_t v;
    memcpy(&v, p + 2 * c, 2);
    return v;
}

/* the bits of x spread up to k positions both ways (0 < k < 64) within the word, by doubling:
 * `steps` (from spread_steps) take the radius from 0 to k, each at most the radius so far + 1 */
static inline uint64_t spread(uint64_t x, const unsigned *steps, int nsteps)
{
    uint64_t up = x, down = x;
    for (int q = 0; q < nsteps; q++) {
        up |= up << steps[q];
        down |= down >> steps[q];
    }
    return up | down;
}

static inline int spread_steps(size_t k, unsigned *steps)
{
    int n = 0;
    for (size_t radius = 0; radius < k;) {
        unsigned d = (unsigned)(radius + 1 < k - radius ? radius + 1 : k - radius);
        steps[n++] = d;
        radius += d;
    }
    return n;
}

/* bits 0 .. the highest set bit of c; bits from the lowest set bit of c up to 63 */
static inline uint64_t fill_below(uint64_t c) { return c ? ~(uint64_t)0 >> clz64(c) : 0; }
static inline uint64_t fill_above(uint64_t c) { return c ? ~(uint64_t)0 << ctz64(c) : 0; }

/* H-dilation of one row of marks by k, 0 < k < 64 (src has a zero word after the last; dst may
 * be src: each word is written after its last read) */
static inline void dilate_row(const uint64_t *src, uint64_t *dst, size_t words, size_t k, const unsigned *steps, int nsteps)
{
    uint64_t prev = 0;
    for (size_t j = 0; j < words; j++) {
        uint64_t x = src[j], from_prev = prev >> (64 - k), from_next = src[j + 1] << (64 - k);
        prev = x;
        dst[j] = (x | from_prev | from_next) ? spread(x, steps, nsteps) | fill_below(from_prev) | fill_above(from_next) : 0;
    }
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__GLIBC__) && __GNUC__ >= 11
/* builds for x86-64-v3 (AVX2, BMI, popcnt: 12% fewer instructions in the scan), for popcnt
 * alone (nearly all x86-64 since 2008) and for the baseline, chosen at load time */
#define POPCNT_CLONES __attribute__((target_clones("arch=x86-64-v3", "popcnt", "default")))
#define V3_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define POPCOUNT(x) __builtin_popcountll(x)
#elif defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__GLIBC__)
#define POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#define V3_CLONES
#define POPCOUNT(x) __builtin_popcountll(x)
#else
#define V3_CLONES
#define POPCNT_CLONES
#define POPCOUNT(x) popcount64(x)
#endif

/* popcount prefix of a band row: prefix[j] = set bits in words 0 .. j - 1 */
static inline void band_prefix(const uint64_t *row, size_t words, int64_t *prefix)
{
    prefix[0] = 0;
    for (size_t j = 0; j < words; j++)
        prefix[j + 1] = prefix[j] + POPCOUNT(row[j]);
}

/* set bits of a band row below column e (the row has a zero word after its last) */
static inline int64_t band_below(const uint64_t *row, const int64_t *prefix, size_t e)
{
    return prefix[e >> 6] + POPCOUNT(row[e >> 6] & (((uint64_t)1 << (e & 63)) - 1));
}

/* ------------------------------------------------------------------ map views */

/* One segment map: row r starts at base + r * stride; 16-bit values in the other byte order
 * than this machine's when swap (a view into big-endian PNG rows). */
typedef struct {
    Py_buffer view;
    int held;
    const uint8_t *base;
    size_t stride;
    int swap;
} Map;

static inline const uint8_t *row_of(const Map *m, size_t r) { return m->base + r * m->stride; }

static inline unsigned value_of(const Map *m, const uint8_t *row, size_t c, int size)
{
    unsigned v = value_at(row, c, size);
    return m->swap ? ((v & 0xFF) << 8) | (v >> 8) : v;
}

/* ------------------------------------------------------------------ runs and band of a scan */

typedef struct {
    Vec starts;     /* flat pixel index r * w + c of every run start */
    Vec keys;       /* keyed scans: value in map 0 * ncols + value in map 1, per run */
    unsigned max0, max1; /* keyed scans: the largest value seen in maps 0 and 1 */
    uint64_t *band; /* rows + k rows of `wide` words: the boundary band (row r at r + k after the dilation) */
    size_t words, wide, rows;
} Scan;

/* ------------------------------------------------------------------ class pairs */

/* one row of count_pair's result: class of A, class of B, pixels, band pixels */
typedef struct {
    int64_t a, b, n, band;
} ClassPair;

/* ------------------------------------------------------------------ across the files */

/* edges.c: the edge scan of a row below another, for `size`-byte elements (vbits may be NULL) */
typedef int (*EdgeFn)(const uint8_t *row, const uint8_t *above, size_t w, uint64_t *hbits, uint64_t *vbits);
RUNS_INTERNAL void horizontal_edges(const uint8_t *row, size_t w, int size, uint64_t *bits);
RUNS_INTERNAL EdgeFn edge_fn(int size);
RUNS_INTERNAL void runs_cpu_init(void);

/* scan.c */
RUNS_INTERNAL int scan_maps(const Map *maps, size_t nmaps, size_t nb, size_t h, size_t w, int size, long k_, size_t ncols,
                            Scan *s);
RUNS_INTERNAL int run_pass(const Scan *s, size_t h, size_t w, long k, int64_t *out, const int64_t *keys, int64_t *t,
                           int64_t *tb);
RUNS_INTERNAL void scan_free(Scan *s);

/* stream.c */
RUNS_INTERNAL int count_stream(const Map *maps, size_t h, size_t w, int size, size_t k, size_t na, size_t nb, int64_t *t,
                               int64_t *tb, unsigned *max0_out, unsigned *max1_out);

/* breakdown.c */
RUNS_INTERNAL Py_ssize_t categorize(const int64_t *t, const int64_t *tb, size_t na, size_t nb, const int64_t *ca,
                                    const int64_t *cb, int64_t unmapped, double missing_fraction, double naming_iou,
                                    int64_t *breakdown, ClassPair *pairs);

#endif /* SEGDATA_RUNS_H */
