/*
 * segdata._runs: the per-image kernel of the consistency analysis (analyses/consistency.py).
 *
 * - count_pair(a, b, ...): everything count_image computes for two segment maps, in one sweep
 *   over the rows: the runs of constant (segment of A, segment of B), the boundary band, the
 *   table of segment pairs, the breakdown rules on it and the class pairs.
 * - joint_runs(maps, ...): the joint runs of up to 16 maps and each run's band pixels, for three
 *   or more annotations (and the tests); numpy then makes the tables.
 *
 * Both give what the numpy path of consistency.py gives (the tests compare them on random maps):
 * that path makes a dozen full-image passes (comparisons, packing, nonzero, gathers), this one
 * reads each pixel about once. Label maps change rarely along a row and from one row to the next:
 * a row is compared with the row above one vector test per 64 pixels (AVX2 where the CPU has it,
 * chosen at import; SSE2, which every x86-64 has; a byte loop on other machines), and its
 * horizontal edges are recomputed only where a pixel changed.
 *
 * Conventions (see boundary_band in consistency.py):
 * - a run is a maximal stretch of a row over which every map keeps its value; every row starts
 *   a run; runs are returned as flat pixel indices of their starts, in order;
 * - a boundary pixel has a left, right, upper or lower neighbour with another value in one of
 *   the first `nband` maps; the band is every pixel within chessboard distance K of one.
 * - maps are 2-D buffers of 1- or 2-byte elements whose rows may be strided (the rows of an
 *   inflated PNG, one filter byte apart), 16-bit values in either byte order.
 *
 * Built as an optional extension: without a compiler the numpy path runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MAPS 16

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

/* room for n more elements */
static int vec_reserve(Vec *v, size_t n)
{
    if (v->len + n <= v->cap)
        return 0;
    size_t cap = v->cap ? v->cap : 65536;
    while (cap < v->len + n)
        cap *= 2;
    int64_t *d = realloc(v->data, cap * sizeof(int64_t));
    if (d == NULL)
        return -1;
    v->data = d;
    v->cap = cap;
    return 0;
}

static inline void set_bit(uint64_t *bits, size_t c) { bits[c >> 6] |= (uint64_t)1 << (c & 63); }

/* 1 when the 32 bytes at p and q differ */
static inline int differ32(const uint8_t *p, const uint8_t *q)
{
    uint64_t x[4], y[4];
    memcpy(x, p, 32);
    memcpy(y, q, 32);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) != 0;
}

static inline unsigned value_at(const uint8_t *p, size_t c, int size)
{
    if (size == 1)
        return p[c];
    uint16_t v;
    memcpy(&v, p + 2 * c, 2);
    return v;
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
static void horizontal_edges(const uint8_t *row, size_t w, int size, uint64_t *bits)
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
 * AVX2 build, chosen at import where the CPU has it (see PyInit__runs). */
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
typedef int (*EdgeFn)(const uint8_t *, const uint8_t *, size_t, uint64_t *, uint64_t *);

/* the edge scan for `size`-byte elements */
static EdgeFn edge_fn(int size)
{
#ifdef HAVE_AVX2_BUILD
    if (use_avx2)
        return size == 1 ? update_edges_u8_avx2 : update_edges_u16_avx2;
#endif
    return size == 1 ? update_edges_u8 : update_edges_u16;
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

static int spread_steps(size_t k, unsigned *steps)
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


/* out = x shifted by d pixels towards higher indices (d > 0) or lower (d < 0); n words */
static void shift_bits(const uint64_t *x, uint64_t *out, size_t n, long d)
{
    size_t q = (size_t)(d < 0 ? -d : d) >> 6;
    unsigned r = (unsigned)((d < 0 ? -d : d) & 63);
    memset(out, 0, n * sizeof(uint64_t));
    if (q >= n)
        return;
    if (d >= 0) {
        for (size_t j = n; j-- > q;) {
            uint64_t v = x[j - q] << r;
            if (r && j - q >= 1)
                v |= x[j - q - 1] >> (64 - r);
            out[j] = v;
        }
    } else {
        for (size_t j = 0; j + q < n; j++) {
            uint64_t v = x[j + q] >> r;
            if (r && j + q + 1 < n)
                v |= x[j + q + 1] << (64 - r);
            out[j] = v;
        }
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

/* Accepts a 2-D buffer of shape (h, w) whose elements are `size` bytes apart (rows may be
 * farther apart than w * size), or a contiguous buffer of h * w * size bytes. */
static int map_open(PyObject *obj, Map *m, size_t h, size_t w, int size, Py_ssize_t index)
{
    if (PyObject_GetBuffer(obj, &m->view, PyBUF_RECORDS_RO) < 0)
        return -1;
    m->held = 1;
    m->base = m->view.buf;
    m->stride = w * (size_t)size;
    m->swap = 0;
    Py_buffer *v = &m->view;
    if (v->ndim == 2) {
        if ((size_t)v->shape[0] != h || (size_t)v->shape[1] != w || v->itemsize != size || v->strides[1] != size ||
            (h > 1 && v->strides[0] < (Py_ssize_t)(w * (size_t)size))) {
            PyErr_Format(PyExc_ValueError, "map %zd: expected (%zu, %zu) elements of %d bytes with positive row strides",
                         index, h, w, size);
            return -1;
        }
        m->stride = (size_t)v->strides[0];
        const char *f = v->format ? v->format : "B";
        int big = f[0] == '>' || f[0] == '!', little = f[0] == '<';
        m->swap = size == 2 && (PY_LITTLE_ENDIAN ? big : little);
    } else if (!PyBuffer_IsContiguous(v, 'C') || (size_t)v->len != h * w * (size_t)size) {
        PyErr_Format(PyExc_ValueError, "map %zd has %zd bytes, expected %zu", index, v->len, h * w * (size_t)size);
        return -1;
    }
    return 0;
}

static void map_close(Map *m)
{
    if (m->held)
        PyBuffer_Release(&m->view);
    m->held = 0;
}

static inline const uint8_t *row_of(const Map *m, size_t r) { return m->base + r * m->stride; }

static inline unsigned value_of(const Map *m, const uint8_t *row, size_t c, int size)
{
    unsigned v = value_at(row, c, size);
    return m->swap ? ((v & 0xFF) << 8) | (v >> 8) : v;
}

/* ------------------------------------------------------------------ the scan */

typedef struct {
    Vec starts;     /* flat pixel index r * w + c of every run start */
    Vec keys;       /* keyed scans: value in map 0 * ncols + value in map 1, per run */
    unsigned max0, max1; /* keyed scans: the largest value seen in maps 0 and 1 */
    uint64_t *band; /* rows + k rows of `wide` words: the boundary band (row r at r + k after the dilation) */
    size_t words, wide, rows;
} Scan;

static void scan_free(Scan *s)
{
    free(s->starts.data);
    free(s->keys.data);
    free(s->band);
}

/* Runs of constant values across all maps, and the bit-packed band of the first `nb` maps
 * (k < 0: none). With `ncols` > 0, each run's key (value in map 0 * ncols + value in map 1),
 * read while the row is in cache. Returns 0, or -1 when out of memory. No Python calls. */
V3_CLONES
static int scan_maps(const Map *maps, size_t nmaps, size_t nb, size_t h, size_t w, int size, long k_, size_t ncols, Scan *s)
{
    int want_band = k_ >= 0, failed = 0;
    size_t k = k_ < 0 ? 0 : (size_t)k_;
    size_t words = (w + 63) / 64;                                /* the real pixels of a row */
    size_t wide = want_band ? (w + 2 * k + 63) / 64 + 1 : words; /* room for the dilation */
    size_t rows = h + k;                                         /* k empty rows below the image */
    if (w == 0)
        h = rows = 0; /* no pixels, no runs */
    s->words = words;
    s->wide = wide;
    s->rows = rows;
    uint64_t *edges = calloc(words + 1, sizeof(uint64_t));
    uint64_t *extra = calloc(words + 1, sizeof(uint64_t));
    uint64_t *own = calloc(nmaps * (words + 1), sizeof(uint64_t));
    uint64_t *vcur = calloc(words + 1, sizeof(uint64_t));
    uint64_t *tmp = NULL;
    EdgeFn scan_edges = edge_fn(size);
    if (want_band) {
        s->band = malloc((rows * wide + 1) * sizeof(uint64_t));
        if (s->band != NULL) /* the k rows below the image; rows above are written by the scan */
            memset(s->band + h * wide, 0, ((rows - h) * wide + 1) * sizeof(uint64_t));
        tmp = calloc(wide + 1, sizeof(uint64_t));
    }
    if (!edges || !extra || !own || !vcur || (want_band && (!s->band || !tmp)))
        failed = 1;
    for (size_t r = 0; r < h && !failed; r++) {
        /* each map's horizontal edges: those of the row above when the row equals it */
        int same_all = r > 0, same_band = r > 0;
        if (want_band && r > 0)
            memset(vcur, 0, words * sizeof(uint64_t));
        for (size_t m = 0; m < nmaps; m++) {
            const uint8_t *row = row_of(&maps[m], r);
            uint64_t *mine = own + m * (words + 1);
            if (r == 0) {
                horizontal_edges(row, w, size, mine);
            } else {
                const uint8_t *above = row - maps[m].stride;
                int changed = scan_edges(row, above, w, mine, want_band && m < nb ? vcur : NULL);
                if (!changed)
                    continue; /* the row above's edges, no vertical edge */
            }
            same_all = 0;
            if (m < nb)
                same_band = 0;
        }
        if (!same_all) {
            memset(edges, 0, words * sizeof(uint64_t));
            for (size_t m = 0; m < nb; m++)
                for (size_t j = 0; j < words; j++)
                    edges[j] |= own[m * (words + 1) + j];
            memcpy(extra, edges, words * sizeof(uint64_t));
            for (size_t m = nb; m < nmaps; m++)
                for (size_t j = 0; j < words; j++)
                    extra[j] |= own[m * (words + 1) + j];
        }
        /* run starts: the row start and every edge of any map */
        const uint8_t *row0 = row_of(&maps[0], r), *row1 = ncols ? row_of(&maps[1], r) : NULL;
        if (vec_reserve(&s->starts, w + 1) < 0 || (ncols && vec_reserve(&s->keys, w + 1) < 0)) {
            failed = 1;
            break;
        }
        int64_t *st = s->starts.data + s->starts.len, *key = ncols ? s->keys.data + s->keys.len : NULL;
        size_t nrun = 0, base = r * w;
        unsigned max0 = s->max0, max1 = s->max1;
        /* column 0, then every edge (bit c: pixel c differs from c - 1 in some map), word by word */
        size_t j = 0, c = 0;
        uint64_t x = words ? extra[0] : 0;
        for (;;) {
            st[nrun] = (int64_t)(base + c);
            if (ncols) {
                unsigned a = size == 1 ? row0[c] : value_of(&maps[0], row0, c, 2);
                unsigned b = size == 1 ? row1[c] : value_of(&maps[1], row1, c, 2);
                max0 = a > max0 ? a : max0;
                max1 = b > max1 ? b : max1;
                key[nrun] = (int64_t)a * (int64_t)ncols + b;
            }
            nrun++;
            if (!next_edge(extra, words, &j, &x, &c))
                break;
        }
        s->starts.len += nrun;
        s->max0 = max0;
        s->max1 = max1;
        if (ncols)
            s->keys.len += nrun;
        if (failed || !want_band)
            continue;
        /* boundary pixels: both pixels of each horizontal edge, and of each vertical edge
         * between rows r - 1 and r (marked in both rows) */
        uint64_t *out = s->band + r * wide;
        for (size_t j = 0; j < words; j++) /* the band is not zeroed beforehand: every row is written once here */
            out[j] = edges[j] | (edges[j] >> 1) | (edges[j + 1] << 63);
        for (size_t j = words; j < wide; j++)
            out[j] = 0;
        if (r > 0 && !same_band) {
            uint64_t *above = out - wide;
            for (size_t j = 0; j < words; j++) {
                above[j] |= vcur[j];
                out[j] |= vcur[j];
            }
        }
    }
    if (want_band && !failed && k) {
        /* horizontal dilation: y[c] = OR x[c - s], s in [0, 2k], by doubling; then shift back k */
        size_t total = 2 * k + 1;
        uint64_t *band = s->band;
        unsigned steps[8];
        int nsteps = k < 64 ? spread_steps(k, steps) : 0;
        for (size_t r = 0; r < h; r++) {
            uint64_t *y = band + r * wide, any = 0;
            for (size_t j = 0; j < words; j++)
                any |= y[j];
            if (!any)
                continue;
            if (k < 64) { /* each word from itself and its neighbours: bits move less than a word */
                dilate_row(y, y, words, k, steps, nsteps); /* y[words] is 0 */
                continue;
            }
            size_t span = 1;
            while (span < total) {
                size_t step = span < total - span ? span : total - span;
                shift_bits(y, tmp, wide, (long)step);
                for (size_t j = 0; j < wide; j++)
                    y[j] |= tmp[j];
                span += step;
            }
            shift_bits(y, tmp, wide, -(long)k);
            memcpy(y, tmp, wide * sizeof(uint64_t));
        }
        /* vertical dilation, the same way over the rows (k empty rows below the image) */
        size_t span = 1;
        while (span < total) {
            size_t step = span < total - span ? span : total - span;
            for (size_t r = rows; r-- > step;) {
                uint64_t *dst = band + r * wide;
                const uint64_t *src = band + (r - step) * wide;
                for (size_t j = 0; j < words; j++)
                    dst[j] |= src[j];
            }
            span += step;
        }
    }
    free(edges);
    free(extra);
    free(own);
    free(vcur);
    free(tmp);
    return failed ? -1 : 0;
}

/* One pass over the runs, row by row. With `out`: out[i] = band pixels of run i. With `keys`:
 * t[keys[i]] += pixels of run i and, when there is a band, tb[keys[i]] += its band pixels. The
 * band pixels of a run [s, e) of a row are P(e) - P(s), P(x) = set bits of the row below x (a
 * popcount prefix over the words and one masked word). Row r of the band is row r + k of `band`
 * (after the vertical dilation); band rows have a zero word after the last real one. */
POPCNT_CLONES
static void per_run(const uint64_t *band, size_t wide, size_t words, size_t k, size_t h, size_t w,
                    const int64_t *starts, size_t n, int64_t *prefix, int64_t *out, const int64_t *keys, int64_t *t, int64_t *tb)
{
    size_t i = 0;
    for (size_t r = 0; r < h; r++) {
        size_t base = r * w, end = base + w, first = i;
        while (i < n && (size_t)starts[i] < end)
            i++;
        if (band == NULL) { /* lengths only */
            for (size_t q = first; q < i; q++)
                t[keys[q]] += (int64_t)((q + 1 < i ? (size_t)starts[q + 1] : end) - (size_t)starts[q]);
            continue;
        }
        const uint64_t *row = band + (r + k) * wide;
        band_prefix(row, words, prefix);
        int64_t below_start = 0;
        for (size_t q = first; q < i; q++) {
            size_t e = (q + 1 < i ? (size_t)starts[q + 1] : end) - base;
            int64_t below_end = band_below(row, prefix, e);
            int64_t inside = below_end - below_start;
            below_start = below_end;
            if (out) {
                out[q] = inside;
            } else {
                t[keys[q]] += (int64_t)(e - ((size_t)starts[q] - base));
                tb[keys[q]] += inside;
            }
        }
    }
}

/* per_run after scan_maps (k < 0: no band); 0, or -1 when out of memory */
static int run_pass(const Scan *s, size_t h, size_t w, long k, int64_t *out, const int64_t *keys, int64_t *t, int64_t *tb)
{
    int64_t *prefix = calloc(s->words + 2, sizeof(int64_t));
    if (prefix == NULL)
        return -1;
    if (w && k >= 0 && s->band != NULL) { /* bits past the row end (left by the dilation) are not pixels */
        for (size_t r = 0; r < h; r++) {
            uint64_t *row = s->band + (r + (size_t)k) * s->wide;
            if (w & 63)
                row[s->words - 1] &= ((uint64_t)1 << (w & 63)) - 1;
            row[s->words] = 0;
        }
    }
    per_run(k >= 0 ? s->band : NULL, s->wide, s->words, k < 0 ? 0 : (size_t)k, w ? h : 0, w, s->starts.data,
            s->starts.len, prefix, out, keys, t, tb);
    free(prefix);
    return 0;
}

PyDoc_STRVAR(joint_runs_doc,
"joint_runs(maps, height, width, itemsize, nband, k)\n"
"--\n\n"
"Runs of constant values across all of `maps` (each a (height, width) buffer of elements of\n"
"`itemsize` bytes, 1 or 2, rows possibly strided, or a contiguous buffer of height * width\n"
"elements) and, when k >= 0, the pixels of each run inside the boundary band of the first\n"
"`nband` maps (chessboard distance k).\n\n"
"Returns (starts, lengths, values, band): bytes of int64 flat indices of the run starts and of\n"
"their lengths, a tuple with each map's value per run (bytes of `itemsize` elements, in the\n"
"map's byte order), and bytes of int64 band-pixel counts per run (None when k < 0).");

static PyObject *joint_runs(PyObject *self, PyObject *args)
{
    PyObject *seq;
    Py_ssize_t h_, w_, size_, nband_, k_;
    if (!PyArg_ParseTuple(args, "Onnnnn", &seq, &h_, &w_, &size_, &nband_, &k_))
        return NULL;
    PyObject *fast = PySequence_Fast(seq, "maps must be a sequence");
    if (fast == NULL)
        return NULL;
    Py_ssize_t nmaps = PySequence_Fast_GET_SIZE(fast);
    Map maps[MAX_MAPS];
    memset(maps, 0, sizeof(maps));
    Scan scan;
    memset(&scan, 0, sizeof(scan));
    PyObject *result = NULL;
    int64_t *counts = NULL;
    int failed = 0;

    if (nmaps < 1 || nmaps > MAX_MAPS || h_ < 0 || w_ < 0 || (size_ != 1 && size_ != 2) || nband_ < 1 ||
        nband_ > nmaps) {
        PyErr_SetString(PyExc_ValueError, "joint_runs: 1 to 16 maps, itemsize 1 or 2, 1 <= nband <= len(maps)");
        goto done;
    }
    size_t h = (size_t)h_, w = (size_t)w_;
    int size = (int)size_, want_band = k_ >= 0;
    for (Py_ssize_t m = 0; m < nmaps; m++)
        if (map_open(PySequence_Fast_GET_ITEM(fast, m), &maps[m], h, w, size, m) < 0)
            goto done;

    Py_BEGIN_ALLOW_THREADS
    failed = scan_maps(maps, (size_t)nmaps, (size_t)nband_, h, w, size, (long)k_, 0, &scan) < 0;
    if (want_band && !failed) {
        counts = malloc((scan.starts.len + 1) * sizeof(int64_t));
        failed = counts == NULL || run_pass(&scan, h, w, (long)k_, counts, NULL, NULL, NULL) < 0;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    {
        /* lengths and each map's value per run, from the starts */
        size_t n = scan.starts.len, total_px = w ? h * w : 0;
        const int64_t *st = scan.starts.data;
        PyObject *s = PyBytes_FromStringAndSize((const char *)st, (Py_ssize_t)(n * sizeof(int64_t)));
        PyObject *len = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * sizeof(int64_t)));
        PyObject *b = want_band ? PyBytes_FromStringAndSize((const char *)counts, (Py_ssize_t)(n * sizeof(int64_t)))
                                : (Py_INCREF(Py_None), Py_None);
        PyObject *vals = PyTuple_New(nmaps);
        int ok = s && len && b && vals;
        if (ok) {
            int64_t *l = (int64_t *)PyBytes_AS_STRING(len);
            for (size_t i = 0; i < n; i++)
                l[i] = (i + 1 < n ? st[i + 1] : (int64_t)total_px) - st[i];
        }
        for (Py_ssize_t m = 0; ok && m < nmaps; m++) {
            PyObject *v = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * size));
            if (v == NULL) {
                ok = 0;
                break;
            }
            uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(v);
            for (size_t i = 0; i < n; i++) {
                const uint8_t *row = row_of(&maps[m], (size_t)st[i] / w);
                memcpy(dst + size * i, row + size * ((size_t)st[i] % w), (size_t)size);
            }
            PyTuple_SET_ITEM(vals, m, v);
        }
        if (ok)
            result = PyTuple_Pack(4, s, len, vals, b);
        Py_XDECREF(s);
        Py_XDECREF(len);
        Py_XDECREF(b);
        Py_XDECREF(vals);
    }
done:
    for (Py_ssize_t m = 0; m < MAX_MAPS; m++)
        map_close(&maps[m]);
    Py_DECREF(fast);
    scan_free(&scan);
    free(counts);
    return result;
}

/* ------------------------------------------------------------------ one pair, streamed */

/* count_pair's sweep for a band of 0 <= k < 64: the edge scan, the band and every count in one
 * pass over the rows. Band row q is finished k rows behind the scan, as the OR of the 2k + 1
 * dilated mark rows around it (a ring of rows); each row's runs wait for it in a ring of k + 2
 * rows: nothing the size of the image is written, and what is kept stays in cache. The same
 * counts as scan_maps + run_pass (the tests compare count_pair with the numpy path for K below
 * and above 64). t[a * nb + b] += pixels, tb[...] += band pixels; an id out of range (>= na in
 * map 0, >= nb in map 1) is counted nowhere and reported through max0 / max1. Returns -1 when
 * out of memory. */
V3_CLONES
static int count_stream(const Map *maps, size_t h, size_t w, int size, size_t k, size_t na, size_t nb, int64_t *t,
                        int64_t *tb, unsigned *max0_out, unsigned *max1_out)
{
    size_t words = (w + 63) / 64, R = k + 2, D = 2 * k + 1;
    if (w == 0)
        h = 0;
    uint64_t *own = calloc(2 * (words + 1), sizeof(uint64_t)), *edges = calloc(words + 1, sizeof(uint64_t));
    uint64_t *vcur = calloc(words + 1, sizeof(uint64_t)), *marks = calloc(2 * (words + 1), sizeof(uint64_t));
    uint64_t *dil = calloc(D * (words + 1), sizeof(uint64_t)), *band = calloc(words + 1, sizeof(uint64_t));
    int64_t *prefix = calloc(words + 2, sizeof(int64_t));
    uint32_t *cols = malloc(R * (w + 1) * sizeof(uint32_t)), *keys = malloc(R * (w + 1) * sizeof(uint32_t));
    size_t *nruns = calloc(R, sizeof(size_t));
    int failed = !own || !edges || !vcur || !marks || !dil || !band || !prefix || !cols || !keys || !nruns;
    unsigned steps[8], max0 = 0, max1 = 0;
    int nsteps = k ? spread_steps(k, steps) : 0;
    EdgeFn scan_v = edge_fn(size);
    for (size_t r = 0; r <= h && !failed; r++) {
        if (r < h) {
            /* both maps' horizontal edges, and the vertical edges between rows r - 1 and r */
            int same = r > 0;
            if (r > 0)
                memset(vcur, 0, words * sizeof(uint64_t));
            for (size_t m = 0; m < 2; m++) {
                const uint8_t *row = row_of(&maps[m], r);
                uint64_t *mine = own + m * (words + 1);
                if (r == 0)
                    horizontal_edges(row, w, size, mine);
                else if (!scan_v(row, row - maps[m].stride, w, mine, vcur))
                    continue;
                same = 0;
            }
            if (!same)
                for (size_t j = 0; j < words; j++)
                    edges[j] = own[j] | own[words + 1 + j];
            /* the runs: pixels counted now, columns and keys kept for the band */
            const uint8_t *row0 = row_of(&maps[0], r), *row1 = row_of(&maps[1], r);
            uint32_t *cr = cols + (r % R) * (w + 1), *kr = keys + (r % R) * (w + 1);
            size_t n = 0, j = 0, c = 0;
            uint64_t x = words ? edges[0] : 0;
            for (;;) {
                unsigned a = size == 1 ? row0[c] : value_of(&maps[0], row0, c, 2);
                unsigned b = size == 1 ? row1[c] : value_of(&maps[1], row1, c, 2);
                max0 = a > max0 ? a : max0;
                max1 = b > max1 ? b : max1;
                cr[n] = (uint32_t)c;
                kr[n] = a < na && b < nb ? (uint32_t)(a * nb + b) : UINT32_MAX;
                n++;
                if (!next_edge(edges, words, &j, &x, &c))
                    break;
            }
            nruns[r % R] = n;
            for (size_t i = 0; i < n; i++)
                if (kr[i] != UINT32_MAX)
                    t[kr[i]] += (int64_t)((i + 1 < n ? cr[i + 1] : w) - cr[i]);
            /* marks: both pixels of every horizontal edge; a vertical edge marks rows r - 1 and r */
            uint64_t *cur = marks + (r & 1) * (words + 1), *prev = marks + ((r + 1) & 1) * (words + 1);
            for (size_t q = 0; q < words; q++)
                cur[q] = edges[q] | (edges[q] >> 1) | (edges[q + 1] << 63);
            if (r > 0 && !same)
                for (size_t q = 0; q < words; q++) {
                    prev[q] |= vcur[q];
                    cur[q] |= vcur[q];
                }
        }
        if (r == 0)
            continue;
        /* row r - 1 is marked for good: dilate it along the row */
        const uint64_t *done = marks + ((r - 1) & 1) * (words + 1);
        uint64_t *d = dil + ((r - 1) % D) * (words + 1);
        if (k)
            dilate_row(done, d, words, k, steps, nsteps);
        else
            memcpy(d, done, words * sizeof(uint64_t));
        /* band rows whose 2k + 1 dilated rows are all known: r - 1 - k, and at the end every row left */
        size_t first = r - 1 >= k ? r - 1 - k : 0, last = r < h ? (r - 1 >= k ? r - 1 - k : 0) : h - 1;
        if (r < h && r - 1 < k)
            continue;
        for (size_t qr = first; qr <= last; qr++) {
            size_t lo = qr >= k ? qr - k : 0, hi = qr + k < h ? qr + k : h - 1;
            memcpy(band, dil + (lo % D) * (words + 1), words * sizeof(uint64_t));
            for (size_t i = lo + 1; i <= hi; i++) {
                const uint64_t *src = dil + (i % D) * (words + 1);
                for (size_t q = 0; q < words; q++)
                    band[q] |= src[q];
            }
            if (w & 63)
                band[words - 1] &= ((uint64_t)1 << (w & 63)) - 1;
            band_prefix(band, words, prefix);
            const uint32_t *cr = cols + (qr % R) * (w + 1), *kr = keys + (qr % R) * (w + 1);
            size_t n = nruns[qr % R];
            int64_t below_start = 0;
            for (size_t i = 0; i < n; i++) {
                size_t e = i + 1 < n ? cr[i + 1] : w;
                int64_t below_end = band_below(band, prefix, e);
                if (kr[i] != UINT32_MAX)
                    tb[kr[i]] += below_end - below_start;
                below_start = below_end;
            }
        }
    }
    *max0_out = max0;
    *max1_out = max1;
    free(own), free(edges), free(vcur), free(marks), free(dil), free(band), free(prefix), free(cols), free(keys), free(nruns);
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ one pair, counted */

enum { NOT_COMPARED, AGREE, QUALITY, NAMING, QUANTITY };

typedef struct {
    int64_t a, b, n, band;
} ClassPair;

static int cmp_pair(const void *x, const void *y)
{
    const ClassPair *p = x, *q = y;
    if (p->a != q->a)
        return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

/* The breakdown rules of consistency.py (_categories_dense, whose docs define them) on the
 * dense (na, nb) table t of segment pairs, and the class pairs. cat: na * nb bytes out;
 * breakdown[3]: pixels of quality, naming, quantity. Returns the number of class pairs written
 * to `pairs` (room for na * nb), sorted by (class of A, class of B); -1 when out of memory. */
static Py_ssize_t categorize(const int64_t *t, const int64_t *tb, size_t na, size_t nb, const int64_t *ca,
                             const int64_t *cb, int64_t unmapped, double missing_fraction, double naming_iou,
                             int64_t *breakdown, ClassPair *pairs)
{
    int64_t *area_a = calloc(na, sizeof(int64_t)), *unl_in_b = calloc(na, sizeof(int64_t));
    int64_t *area_b = calloc(nb, sizeof(int64_t)), *unl_in_a = calloc(nb, sizeof(int64_t));
    int64_t *best_a = calloc(nb, sizeof(int64_t)), *best_a_val = calloc(nb, sizeof(int64_t));
    int64_t *partner_of_a = malloc(na * sizeof(int64_t) + 1);
    uint8_t *has_b = calloc(nb + 1, 1);
    if (!area_a || !unl_in_b || !area_b || !unl_in_a || !best_a || !best_a_val || !partner_of_a || !has_b) {
        free(area_a), free(unl_in_b), free(area_b), free(unl_in_a), free(best_a), free(best_a_val);
        free(partner_of_a), free(has_b);
        return -1;
    }
    /* areas, the pixels the other side leaves unlabeled, and the largest labelled overlaps */
    for (size_t i = 0; i < na; i++) {
        const int64_t *row = t + i * nb;
        int lab_a = ca[i] != 0;
        int64_t best = 0, best_j = -1;
        for (size_t j = 0; j < nb; j++) {
            int64_t x = row[j];
            if (!x)
                continue;
            area_a[i] += x;
            area_b[j] += x;
            if (cb[j] == 0)
                unl_in_b[i] += x;
            if (!lab_a)
                unl_in_a[j] += x;
            else if (cb[j] != 0 && cb[j] != unmapped) {
                if (x > best) /* strictly: the first maximum, the lower segment id on ties */
                    best = x, best_j = (int64_t)j;
                if (x > best_a_val[j])
                    best_a_val[j] = x, best_a[j] = (int64_t)i;
            }
        }
        partner_of_a[i] = best_j;
    }
    /* counterparts: each other's largest labelled overlap */
    for (size_t i = 0; i < na; i++) {
        int64_t j = partner_of_a[i];
        if (j >= 0 && best_a[j] == (int64_t)i)
            has_b[j] = 1;
        else
            partner_of_a[i] = -1;
    }
    breakdown[0] = breakdown[1] = breakdown[2] = 0;
    size_t np = 0;
    for (size_t i = 0; i < na; i++) {
        const int64_t *row = t + i * nb;
        int unl_a = ca[i] == 0;
        int missing_a = (double)unl_in_b[i] > missing_fraction * (double)area_a[i] && partner_of_a[i] < 0;
        for (size_t j = 0; j < nb; j++) {
            int64_t x = row[j];
            if (!x)
                continue;
            pairs[np].a = ca[i];
            pairs[np].b = cb[j];
            pairs[np].n = x;
            pairs[np].band = tb[i * nb + j];
            np++;
            int unl_b = cb[j] == 0;
            if ((unl_a && unl_b) || cb[j] == unmapped || ca[i] == cb[j])
                continue; /* not compared, or agreeing */
            if (!unl_a && !unl_b) {
                double iou = (double)x / ((double)area_a[i] + (double)area_b[j] - (double)x);
                breakdown[iou >= naming_iou || partner_of_a[i] == (int64_t)j ? 1 : 0] += x;
            } else {
                int missing_b = (double)unl_in_a[j] > missing_fraction * (double)area_b[j] && !has_b[j];
                breakdown[(unl_a && missing_b) || (unl_b && missing_a) ? 2 : 0] += x;
            }
        }
    }
    free(area_a), free(unl_in_b), free(area_b), free(unl_in_a), free(best_a), free(best_a_val);
    free(partner_of_a), free(has_b);
    /* class pairs: segment pairs of the same two classes summed */
    qsort(pairs, np, sizeof(ClassPair), cmp_pair);
    size_t out = 0;
    for (size_t p = 0; p < np; p++) {
        if (out && pairs[out - 1].a == pairs[p].a && pairs[out - 1].b == pairs[p].b) {
            pairs[out - 1].n += pairs[p].n;
            pairs[out - 1].band += pairs[p].band;
        } else {
            pairs[out++] = pairs[p];
        }
    }
    return (Py_ssize_t)out;
}

PyDoc_STRVAR(count_pair_doc,
"count_pair(a, b, lut_a, lut_b, k, unmapped, missing_fraction, naming_iou)\n"
"--\n\n"
"Count two segment maps of one image in one pass (consistency.count_image for two maps):\n"
"`a`, `b` are (H, W) buffers of uint8 or uint16 (the same itemsize; rows may be strided, 16-bit\n"
"values in either byte order), `lut_a`, `lut_b` int64 buffers mapping segment id -> class index\n"
"(0 = unlabeled); k the boundary band's half-width (< 0: no band); unmapped the class index of\n"
"unmapped B classes (< 0: none).\n\n"
"Returns (pairs, breakdown): bytes of (R, 4) int64 rows (class of A, class of B, pixels, band\n"
"pixels) sorted by class pair, and the pixels of (segmentation quality, naming, quantity).\n"
"Raises IndexError naming the map (0 or 1) and the segment id when an id has no lookup entry.");

static PyObject *count_pair(PyObject *self, PyObject *args)
{
    PyObject *oa, *ob, *ola, *olb;
    Py_ssize_t k_, unmapped;
    double missing_fraction, naming_iou;
    if (!PyArg_ParseTuple(args, "OOOOnndd", &oa, &ob, &ola, &olb, &k_, &unmapped, &missing_fraction, &naming_iou))
        return NULL;
    Map maps[2];
    memset(maps, 0, sizeof(maps));
    Py_buffer la = {0}, lb = {0};
    int have_la = 0, have_lb = 0, failed = 0;
    Scan scan;
    memset(&scan, 0, sizeof(scan));
    int64_t *t = NULL, *tb = NULL;
    ClassPair *pairs = NULL;
    Py_ssize_t npairs = 0;
    int64_t breakdown[3] = {0, 0, 0};
    PyObject *result = NULL;

    Py_buffer probe;
    if (PyObject_GetBuffer(oa, &probe, PyBUF_RECORDS_RO) < 0)
        return NULL;
    int ok_shape = probe.ndim == 2 && (probe.itemsize == 1 || probe.itemsize == 2);
    size_t h = ok_shape ? (size_t)probe.shape[0] : 0, w = ok_shape ? (size_t)probe.shape[1] : 0;
    int size = (int)probe.itemsize;
    PyBuffer_Release(&probe);
    if (!ok_shape) {
        PyErr_SetString(PyExc_ValueError, "count_pair: maps must be 2-D arrays of 1- or 2-byte elements");
        return NULL;
    }
    if (map_open(oa, &maps[0], h, w, size, 0) < 0 || map_open(ob, &maps[1], h, w, size, 1) < 0)
        goto done;
    if (PyObject_GetBuffer(ola, &la, PyBUF_C_CONTIGUOUS) < 0)
        goto done;
    have_la = 1;
    if (PyObject_GetBuffer(olb, &lb, PyBUF_C_CONTIGUOUS) < 0)
        goto done;
    have_lb = 1;
    size_t na = (size_t)la.len / sizeof(int64_t), nb = (size_t)lb.len / sizeof(int64_t);
    if (na == 0 || nb == 0 || na > ((size_t)1 << 24) / nb) {
        PyErr_Format(PyExc_ValueError, "count_pair: lookup tables of %zu and %zu entries (1 to 2**24 pairs)", na, nb);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    t = calloc(na * nb, sizeof(int64_t));
    tb = calloc(na * nb, sizeof(int64_t));
    failed = !t || !tb;
    if (!failed && k_ >= 0 && k_ < 64 && w < UINT32_MAX && na * nb < UINT32_MAX) { /* one sweep, nothing image-sized kept */
        failed = count_stream(maps, h, w, size, (size_t)k_, na, nb, t, tb, &scan.max0, &scan.max1) < 0;
        if (!failed && (scan.max0 >= na || scan.max1 >= nb))
            failed = 2;
    } else if (!failed) { /* no band, or a band wider than a word: the runs kept, then one pass over them */
        failed = scan_maps(maps, 2, 2, h, w, size, (long)k_, nb, &scan) < 0;
        if (!failed && (scan.max0 >= na || scan.max1 >= nb))
            failed = 2;
        if (!failed)
            failed = run_pass(&scan, h, w, (long)k_, NULL, scan.keys.data, t, tb) < 0;
    }
    if (!failed) {
        pairs = malloc((na * nb + 1) * sizeof(ClassPair));
        failed = pairs == NULL;
        if (!failed) {
            npairs = categorize(t, tb, na, nb, (const int64_t *)la.buf, (const int64_t *)lb.buf,
                                unmapped < 0 ? -1 : (int64_t)unmapped, missing_fraction, naming_iou, breakdown, pairs);
            failed = npairs < 0;
        }
    }
    Py_END_ALLOW_THREADS
    if (failed == 2) {
        int which = scan.max0 >= na ? 0 : 1;
        PyErr_Format(PyExc_IndexError, "%d %u", which, which == 0 ? scan.max0 : scan.max1);
        goto done;
    }
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    {
        PyObject *p = PyBytes_FromStringAndSize((const char *)pairs, npairs * (Py_ssize_t)sizeof(ClassPair));
        if (p != NULL) {
            result = Py_BuildValue("(N(LLL))", p, (long long)breakdown[0], (long long)breakdown[1], (long long)breakdown[2]);
        }
    }
done:
    map_close(&maps[0]);
    map_close(&maps[1]);
    if (have_la)
        PyBuffer_Release(&la);
    if (have_lb)
        PyBuffer_Release(&lb);
    scan_free(&scan);
    free(t);
    free(tb);
    free(pairs);
    return result;
}

static PyMethodDef methods[] = {
    {"joint_runs", joint_runs, METH_VARARGS, joint_runs_doc},
    {"count_pair", count_pair, METH_VARARGS, count_pair_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_runs", "The per-image kernel of the consistency analysis: runs, boundary band, pair counts.", -1, methods,
};

PyMODINIT_FUNC PyInit__runs(void)
{
#ifdef HAVE_AVX2_BUILD
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2");
#endif
    return PyModule_Create(&module);
}
