/*
 * segdata._runs: the joint runs of several segment maps and the pixels of each run inside the
 * boundary band, in one pass over the pixels (analyses/consistency.py, `_runs`).
 *
 * The same results as the numpy path of `_runs` (tests compare the two on random maps): that
 * path makes a dozen full-image passes (comparisons, packing, nonzero, gathers), this one reads
 * each pixel about once. Label maps change rarely along a row and from one row to the next: a
 * row equal to the row above (one memcmp) keeps that row's edges; elsewhere the row is compared
 * with the row above 64 pixels per step (SSE2, which every x86-64 has; a byte loop on other
 * machines), and its horizontal edges are recomputed only where a pixel changed.
 *
 * Conventions (see boundary_band in consistency.py):
 * - a run is a maximal stretch of a row over which every map keeps its value; every row starts
 *   a run; runs are returned as flat pixel indices of their starts, in order;
 * - a boundary pixel has a left, right, upper or lower neighbour with another value in one of
 *   the first `nband` maps; the band is every pixel within chessboard distance K of one.
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
#else
static inline int ctz64(uint64_t x) { return __builtin_ctzll(x); }
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

static int vec_push(Vec *v, int64_t x)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 65536;
        int64_t *d = realloc(v->data, cap * sizeof(int64_t));
        if (d == NULL)
            return -1;
        v->data = d;
        v->cap = cap;
    }
    v->data[v->len++] = x;
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

/* Row `row` below row `above`: vbits |= its vertical edges (when vbits is not NULL), and hbits,
 * which holds the horizontal edges of `above`, becomes those of `row`. An edge at c depends on
 * pixels c - 1 and c only, so it is recomputed only where one of them differs from the pixel
 * above; everywhere else it is the edge above. */
static inline void update_edges(const uint8_t *row, const uint8_t *above, size_t w, int size, uint64_t *hbits, uint64_t *vbits)
{
    size_t c = 0;
    unsigned carry = 0; /* pixel c - 1 differs from the pixel above it */
#ifdef HAVE_SSE2
    for (; c + 64 <= w; c += 64) { /* one word of bits: four blocks of 16 pixels */
        uint64_t vm = differ16(row + c * size, above + c * size, size) |
                      differ16(row + (c + 16) * size, above + (c + 16) * size, size) << 16 |
                      differ16(row + (c + 32) * size, above + (c + 32) * size, size) << 32 |
                      differ16(row + (c + 48) * size, above + (c + 48) * size, size) << 48;
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
}

static void update_edges_u8(const uint8_t *row, const uint8_t *above, size_t w, uint64_t *hbits)
{
    update_edges(row, above, w, 1, hbits, NULL);
}
static void update_edges_u8v(const uint8_t *row, const uint8_t *above, size_t w, uint64_t *hbits, uint64_t *vbits)
{
    update_edges(row, above, w, 1, hbits, vbits);
}
static void update_edges_u16(const uint8_t *row, const uint8_t *above, size_t w, uint64_t *hbits)
{
    update_edges(row, above, w, 2, hbits, NULL);
}
static void update_edges_u16v(const uint8_t *row, const uint8_t *above, size_t w, uint64_t *hbits, uint64_t *vbits)
{
    update_edges(row, above, w, 2, hbits, vbits);
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

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__GLIBC__)
/* the popcnt instruction where the CPU has it (nearly all x86-64 since 2008), chosen at load time */
#define POPCNT_CLONES __attribute__((target_clones("popcnt", "default")))
#define POPCOUNT(x) __builtin_popcountll(x)
#else
#define POPCNT_CLONES
#define POPCOUNT(x) popcount64(x)
#endif

/* out[i] = band pixels of run i; row r of the band is row r + k of `band` (after the doubling) */
POPCNT_CLONES
static void band_per_run(uint64_t *band, size_t wide, size_t words, size_t k, size_t h, size_t w,
                         const int64_t *starts, size_t n, int64_t *prefix, int64_t *out)
{
    size_t i = 0;
    for (size_t r = 0; r < h; r++) {
        uint64_t *row = band + (r + k) * wide;
        if (w & 63)
            row[words - 1] &= ((uint64_t)1 << (w & 63)) - 1;
        prefix[0] = 0;
        for (size_t j = 0; j < words; j++)
            prefix[j + 1] = prefix[j] + POPCOUNT(row[j]);
        size_t base = r * w, below_start = 0;
        for (; i < n && (size_t)starts[i] < base + w; i++) {
            size_t e = (i + 1 < n && (size_t)starts[i + 1] < base + w) ? (size_t)starts[i + 1] - base : w;
            size_t j = e >> 6, below_end;
            if (j >= words)
                below_end = (size_t)prefix[words];
            else
                below_end = (size_t)prefix[j] + ((e & 63) ? (size_t)POPCOUNT(row[j] & (((uint64_t)1 << (e & 63)) - 1)) : 0);
            out[i] = (int64_t)(below_end - below_start);
            below_start = below_end;
        }
    }
}

PyDoc_STRVAR(joint_runs_doc,
"joint_runs(maps, height, width, itemsize, nband, k)\n"
"--\n\n"
"Runs of constant values across all of `maps` (C-contiguous buffers of height * width elements\n"
"of `itemsize` bytes, 1 or 2) and, when k >= 0, the pixels of each run inside the boundary band\n"
"of the first `nband` maps (chessboard distance k).\n\n"
"Returns (starts, lengths, values, band): bytes of int64 flat indices of the run starts and of\n"
"their lengths, a tuple with each map's value per run (bytes of `itemsize` elements), and bytes\n"
"of int64 band-pixel counts per run (None when k < 0).");

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
    Py_buffer views[MAX_MAPS];
    Py_ssize_t got = 0;
    PyObject *result = NULL;
    Vec starts = {0}, counts = {0};
    uint64_t *band = NULL, *tmp = NULL, *edges = NULL, *extra = NULL, *own = NULL, *vcur = NULL;
    int64_t *prefix = NULL;
    int failed = 0;

    if (nmaps < 1 || nmaps > MAX_MAPS || h_ < 0 || w_ < 0 || (size_ != 1 && size_ != 2) || nband_ < 1 ||
        nband_ > nmaps) {
        PyErr_SetString(PyExc_ValueError, "joint_runs: 1 to 16 maps, itemsize 1 or 2, 1 <= nband <= len(maps)");
        goto done;
    }
    for (; got < nmaps; got++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, got), &views[got], PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        if (views[got].len != h_ * w_ * size_) {
            PyErr_Format(PyExc_ValueError, "map %zd has %zd bytes, expected %zd", got, views[got].len, h_ * w_ * size_);
            got++;
            goto done;
        }
    }
    size_t h = (size_t)h_, w = (size_t)w_, k = k_ < 0 ? 0 : (size_t)k_, nb = (size_t)nband_;
    int size = (int)size_, want_band = k_ >= 0;
    size_t words = (w + 63) / 64;                         /* the real pixels of a row */
    size_t wide = want_band ? (w + 2 * k + 63) / 64 + 1 : words; /* room for the dilation */
    size_t rows = h + k;                                  /* k empty rows below the image */
    if (w == 0)
        h = rows = 0; /* no pixels, no runs */

    Py_BEGIN_ALLOW_THREADS
    edges = calloc(words + 1, sizeof(uint64_t));
    extra = calloc(words + 1, sizeof(uint64_t));
    own = calloc((size_t)nmaps * (words + 1), sizeof(uint64_t));
    vcur = calloc(words + 1, sizeof(uint64_t));
    if (want_band) {
        band = calloc(rows * wide + 1, sizeof(uint64_t));
        tmp = calloc(wide + 1, sizeof(uint64_t));
        prefix = calloc(words + 1, sizeof(int64_t));
    }
    if (!edges || !extra || !own || !vcur || (want_band && (!band || !tmp || !prefix)))
        failed = 1;
    for (size_t r = 0; r < h && !failed; r++) {
        /* each map's horizontal edges: those of the row above when the row equals it */
        int same_all = r > 0, same_band = r > 0;
        if (want_band && r > 0)
            memset(vcur, 0, words * sizeof(uint64_t));
        for (size_t m = 0; m < (size_t)nmaps; m++) {
            const uint8_t *row = (const uint8_t *)views[m].buf + r * w * size;
            uint64_t *mine = own + m * (words + 1);
            if (r == 0) {
                horizontal_edges(row, w, size, mine);
            } else if (memcmp(row, row - w * size, w * size) != 0) {
                const uint8_t *above = row - w * size;
                if (want_band && m < nb)
                    (size == 1 ? update_edges_u8v : update_edges_u16v)(row, above, w, mine, vcur);
                else
                    (size == 1 ? update_edges_u8 : update_edges_u16)(row, above, w, mine);
            } else {
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
            for (size_t m = nb; m < (size_t)nmaps; m++)
                for (size_t j = 0; j < words; j++)
                    extra[j] |= own[m * (words + 1) + j];
        }
        /* run starts: the row start and every edge of any map */
        if (vec_push(&starts, (int64_t)(r * w)) < 0) {
            failed = 1;
            break;
        }
        for (size_t j = 0; j < words && !failed; j++) {
            uint64_t x = extra[j];
            while (x) {
                size_t c = j * 64 + (size_t)ctz64(x);
                x &= x - 1;
                if (vec_push(&starts, (int64_t)(r * w + c)) < 0) {
                    failed = 1;
                    break;
                }
            }
        }
        if (!want_band)
            continue;
        /* boundary pixels: both pixels of each horizontal edge, and of each vertical edge
         * between rows r - 1 and r (marked in both rows) */
        uint64_t *out = band + r * wide;
        for (size_t j = 0; j < words; j++)
            out[j] |= edges[j] | (edges[j] >> 1) | (edges[j + 1] << 63);
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
        for (size_t r = 0; r < h; r++) {
            uint64_t *y = band + r * wide, any = 0;
            for (size_t j = 0; j < words; j++)
                any |= y[j];
            if (!any)
                continue;
            if (k < 64) { /* each word from itself and its neighbours: bits move less than a word */
                /* radius 0 -> k by doubling: radius r becomes r + step, step <= r + 1 */
                size_t radius = 0;
                while (radius < k) {
                    unsigned d = (unsigned)(radius + 1 < k - radius ? radius + 1 : k - radius);
                    memcpy(tmp, y, (words + 1) * sizeof(uint64_t)); /* y[words] is 0 */
                    for (size_t j = 0; j < words; j++) {
                        uint64_t x = tmp[j], left = j ? tmp[j - 1] : 0, right = tmp[j + 1];
                        y[j] = x | (x << d) | (left >> (64 - d)) | (x >> d) | (right << (64 - d));
                    }
                    radius += d;
                }
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
    if (want_band && !failed) {
        if (counts.cap < starts.len) {
            int64_t *d = realloc(counts.data, (starts.len + 1) * sizeof(int64_t));
            if (d == NULL)
                failed = 1;
            else {
                counts.data = d;
                counts.cap = starts.len + 1;
            }
        }
        if (!failed) {
            band_per_run(band, wide, words, k, h, w, starts.data, starts.len, prefix, counts.data);
            counts.len = starts.len;
        }
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    {
        /* lengths and each map's value per run, from the starts */
        size_t n = starts.len, total_px = h * w;
        PyObject *s = PyBytes_FromStringAndSize((const char *)starts.data, (Py_ssize_t)(n * sizeof(int64_t)));
        PyObject *len = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * sizeof(int64_t)));
        PyObject *b = want_band ? PyBytes_FromStringAndSize((const char *)counts.data, (Py_ssize_t)(counts.len * sizeof(int64_t)))
                                : (Py_INCREF(Py_None), Py_None);
        PyObject *vals = PyTuple_New(nmaps);
        int ok = s && len && b && vals;
        if (ok) {
            int64_t *l = (int64_t *)PyBytes_AS_STRING(len);
            for (size_t i = 0; i < n; i++)
                l[i] = (i + 1 < n ? starts.data[i + 1] : (int64_t)total_px) - starts.data[i];
        }
        for (Py_ssize_t m = 0; ok && m < nmaps; m++) {
            PyObject *v = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * size));
            if (v == NULL) {
                ok = 0;
                break;
            }
            uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(v);
            const uint8_t *src = views[m].buf;
            if (size == 1)
                for (size_t i = 0; i < n; i++)
                    dst[i] = src[starts.data[i]];
            else
                for (size_t i = 0; i < n; i++)
                    memcpy(dst + 2 * i, src + 2 * starts.data[i], 2);
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
    for (Py_ssize_t m = 0; m < got; m++)
        PyBuffer_Release(&views[m]);
    Py_DECREF(fast);
    free(starts.data);
    free(counts.data);
    free(band);
    free(tmp);
    free(edges);
    free(extra);
    free(own);
    free(vcur);
    free(prefix);
    return result;
}

static PyMethodDef methods[] = {
    {"joint_runs", joint_runs, METH_VARARGS, joint_runs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_runs", "Joint runs and boundary-band counts of segment maps.", -1, methods,
};

PyMODINIT_FUNC PyInit__runs(void)
{
    return PyModule_Create(&module);
}
