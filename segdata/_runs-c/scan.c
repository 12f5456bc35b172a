/*
 * segdata._runs, the run pass: scan_maps finds the runs of constant values across up to 16 maps
 * (a run is a maximal stretch of a row over which every map keeps its value; every row starts a
 * run) and the bit-packed boundary band of the first maps, dilated by K in both directions;
 * run_pass then counts each run's pixels and band pixels with a popcount prefix per band row.
 * joint_runs uses both; count_pair uses them when there is no band or K >= 64 (otherwise stream.c).
 */
#include "runs.h"

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

RUNS_INTERNAL void scan_free(Scan *s)
{
    free(s->starts.data);
    free(s->keys.data);
    free(s->band);
}

/* Runs of constant values across all maps, and the bit-packed band of the first `nb` maps
 * (k < 0: none). With `ncols` > 0, each run's key (value in map 0 * ncols + value in map 1),
 * read while the row is in cache. Returns 0, or -1 when out of memory. No Python calls. */
V3_CLONES
static int scan_maps_impl(const Map *maps, size_t nmaps, size_t nb, size_t h, size_t w, int size, long k_, size_t ncols,
                          Scan *s)
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

/* the entry point of the clones above (static, so that their resolver is not exported) */
RUNS_INTERNAL int scan_maps(const Map *maps, size_t nmaps, size_t nb, size_t h, size_t w, int size, long k_, size_t ncols,
                            Scan *s)
{
    return scan_maps_impl(maps, nmaps, nb, h, w, size, k_, ncols, s);
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
RUNS_INTERNAL int run_pass(const Scan *s, size_t h, size_t w, long k, int64_t *out, const int64_t *keys, int64_t *t, int64_t *tb)
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
