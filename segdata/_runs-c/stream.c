/*
 * segdata._runs, the streamed sweep of count_pair for a boundary band of 0 <= K < 64: edges,
 * band and every count in one pass over the rows of two maps, keeping a ring of rows.
 */
#include "runs.h"

/* count_pair's sweep for a band of 0 <= k < 64: the edge scan, the band and every count in one
 * pass over the rows. Band row q is finished k rows behind the scan, as the OR of the 2k + 1
 * dilated mark rows around it (a ring of rows); each row's runs wait for it in a ring of k + 2
 * rows: nothing the size of the image is written, and what is kept stays in cache. The same
 * counts as scan_maps + run_pass (the tests compare count_pair with the numpy path for K below
 * and above 64). t[a * nb + b] += pixels, tb[...] += band pixels; an id out of range (>= na in
 * map 0, >= nb in map 1) is counted nowhere and reported through max0 / max1. Returns -1 when
 * out of memory. */
V3_CLONES
static int count_stream_impl(const Map *maps, size_t h, size_t w, int size, size_t k, size_t na, size_t nb, int64_t *t,
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

/* the entry point of the clones above (static, so that their resolver is not exported) */
RUNS_INTERNAL int count_stream(const Map *maps, size_t h, size_t w, int size, size_t k, size_t na, size_t nb, int64_t *t,
                               int64_t *tb, unsigned *max0_out, unsigned *max1_out)
{
    return count_stream_impl(maps, h, w, size, k, na, nb, t, tb, max0_out, max1_out);
}
