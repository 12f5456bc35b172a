/*
 * segdata._png: PNG row unfiltering (PNG specification, section 9), the part of PNG decoding that
 * no installed library exposes on its own.
 *
 * segdata.maskio inflates the IDAT stream with libdeflate (the `deflate` package) and calls
 * `unfilter` here; together they decode a Cityscapes 16-bit instanceIds map about ten times
 * faster than libspng, whose generic conversion path to grey+alpha dominates its time, and a
 * Paeth-filtered 2048x1024 leftImg8bit photograph faster than libspng too.
 *
 * Label maps are long runs of equal values: most Paeth- and Up-filtered bytes are zero. Where a
 * row agrees with the row above and the residual is zero, Paeth predicts the byte above (its
 * left neighbour equals its upper-left one), so the stretch up to the next non-zero residual
 * (found eight bytes at a time) is one copy of the row above. Photographs have few such runs:
 * for pixels of three or more bytes (RGB, RGBA, 16-bit grey+alpha) the Paeth and Average rows
 * are undone a whole pixel at a time with a branch-free predictor (the channels of a pixel are
 * independent chains the processor overlaps), and a run is looked for only where a whole
 * pixel's residual is zero. Everything else follows the specification byte by byte.
 *
 * `unfilter_planes` unfilters an 8-bit grey, RGB or RGBA image and writes it as three planes
 * (C, H, W) of uint8 or of float32 in [0, 1], a row at a time while the row is in cache: the
 * layout a network takes, without a second pass over the image.
 *
 * Built as an optional extension: without a compiler segdata falls back to pyspng / Pillow.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint8_t paeth(int a, int b, int c)
{
    int p = a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc)
        return (uint8_t)a;
    if (pb <= pc)
        return (uint8_t)b;
    return (uint8_t)c;
}

static inline int zero8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v == 0;
}

/* The Paeth predictor without branches (the compiler emits conditional moves): on photographs the
 * choice between a, b and c is a coin toss that a branch predictor loses. */
static inline int paeth_bl(int a, int b, int c)
{
    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    int bc = pb <= pc ? b : c;
    int use_a = (pa <= pb) & (pa <= pc);
    return use_a ? a : bc;
}

/* Paeth, a pixel of `bpp` bytes at a time (bpp a compile-time constant where inlined; n a multiple
 * of bpp). A run of rows in step is skipped as in the bytewise path, looked for only where the
 * whole pixel's residual is zero and rounded down to whole pixels. */
static inline void paeth_pixels(const uint8_t *r, const uint8_t *b, uint8_t *x, size_t n, const size_t bpp)
{
    size_t i, k;
    for (i = 0; i < bpp && i < n; i++)
        x[i] = (uint8_t)(r[i] + b[i]); /* a = c = 0: the predictor is b */
    while (i + bpp <= n) {
        int zero = 1;
        for (k = 0; k < bpp; k++)
            zero &= r[i + k] == 0;
        if (zero && memcmp(x + i - bpp, b + i - bpp, bpp) == 0) {
            size_t j = i;
            while (j + 8 <= n && zero8(r + j))
                j += 8;
            while (j < n && r[j] == 0)
                j++;
            j = i + (j - i) / bpp * bpp;
            memcpy(x + i, b + i, j - i);
            i = j;
            continue;
        }
        for (k = 0; k < bpp; k++)
            x[i + k] = (uint8_t)(r[i + k] + paeth_bl(x[i + k - bpp], b[i + k], b[i + k - bpp]));
        i += bpp;
    }
}

static inline void average_pixels(const uint8_t *r, const uint8_t *b, uint8_t *x, size_t n, const size_t bpp)
{
    size_t i, k;
    for (i = 0; i < bpp && i < n; i++)
        x[i] = (uint8_t)(r[i] + (b[i] >> 1));
    for (; i + bpp <= n; i += bpp)
        for (k = 0; k < bpp; k++)
            x[i + k] = (uint8_t)(r[i + k] + ((x[i + k - bpp] + b[i + k]) >> 1));
}

#if defined(__SSE2__)
#include <emmintrin.h>
#define SEGDATA_TWO_ROWS 1
/* Paeth on two rows at once, for photographs (pixels of 3 or 4 bytes). A wavefront: row y is at
 * pixel t while row y+1 is at pixel t-1, whose predictors (row y's pixels t-1 and t-2) are then
 * known. The two pixels share one SSE2 register of 16-bit lanes (0-3: row y, 4-7: row y+1), so
 * one chain of dependent instructions, the cost of a Paeth step, serves two pixels. */
static inline __attribute__((always_inline)) __m128i px_widen(uint32_t v)
{
    return _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)v), _mm_setzero_si128());
}
/* a pixel's bytes; `wide` reads 4 bytes whatever bpp (the caller guarantees they exist) */
static inline __attribute__((always_inline)) __m128i px_load(const uint8_t *p, const size_t bpp, const int wide)
{
    uint32_t v = 0;
    if (wide)
        memcpy(&v, p, 4);
    else
        memcpy(&v, p, bpp);
    return px_widen(v);
}
static inline __attribute__((always_inline)) __m128i abs16(__m128i x)
{
    return _mm_max_epi16(x, _mm_sub_epi16(_mm_setzero_si128(), x));
}
/* One step: returns the new (x0[t], x1[t-1]) register and stores both pixels. `wide`: 4-byte loads
 * and stores, allowed everywhere but at the last pixel of a row (they would touch the byte after
 * it, which for bpp 3 is the next row's first). */
static inline __attribute__((always_inline)) __m128i two_rows_step(const uint8_t *r0, const uint8_t *r1,
                                                                   const uint8_t *above, uint8_t *x0, uint8_t *x1,
                                                                   size_t t, __m128i a, __m128i *c,
                                                                   const size_t bpp, const int wide)
{
    __m128i b = _mm_unpacklo_epi64(px_load(above + t * bpp, bpp, wide), a); /* row y+1's b: x0[t-1] */
    __m128i r = _mm_unpacklo_epi64(px_load(r0 + t * bpp, bpp, wide), px_load(r1 + (t - 1) * bpp, bpp, 1));
    __m128i pa = _mm_sub_epi16(b, *c), pb = _mm_sub_epi16(a, *c);
    __m128i pc = abs16(_mm_add_epi16(pa, pb));
    pa = abs16(pa);
    pb = abs16(pb);
    __m128i least = _mm_min_epi16(pc, _mm_min_epi16(pa, pb));
    __m128i use_b = _mm_cmpeq_epi16(pb, least);
    __m128i pred = _mm_or_si128(_mm_and_si128(use_b, b), _mm_andnot_si128(use_b, *c));
    __m128i use_a = _mm_cmpeq_epi16(pa, least);
    pred = _mm_or_si128(_mm_and_si128(use_a, a), _mm_andnot_si128(use_a, pred));
    a = _mm_and_si128(_mm_add_epi16(pred, r), _mm_set1_epi16(0xff));
    *c = b;
    uint64_t both = (uint64_t)_mm_cvtsi128_si64(_mm_packus_epi16(a, a));
    uint32_t lo = (uint32_t)both, hi = (uint32_t)(both >> 32);
    if (wide)
        memcpy(x0 + t * bpp, &lo, 4);
    else
        memcpy(x0 + t * bpp, &lo, bpp);
    memcpy(x1 + (t - 1) * bpp, &hi, 4); /* pixel t-1 < w-1: its 4th byte is pixel t's, written later */
    return a;
}
/* Rows y and y+1, both Paeth-filtered: r0, r1 their filtered bytes, above the unfiltered row y-1
 * (zeros for the first), x0, x1 the outputs. n = bytes per row = w * bpp, w >= 2, bpp 3 or 4. */
static inline __attribute__((always_inline)) void paeth_two_rows(const uint8_t *r0, const uint8_t *r1,
                                                                 const uint8_t *above, uint8_t *x0, uint8_t *x1,
                                                                 size_t n, const size_t bpp)
{
    const size_t w = n / bpp;
    size_t k, t;
    for (k = 0; k < bpp; k++)
        x0[k] = (uint8_t)(r0[k] + above[k]); /* row y, pixel 0: a = c = 0, the predictor is b */
    uint32_t v = 0;
    memcpy(&v, x0, bpp);
    __m128i a = px_widen(v); /* lo: x0[0]; hi: 0, row y+1 has no left pixel yet */
    v = 0;
    memcpy(&v, above, bpp);
    __m128i c = px_widen(v); /* lo: above[0]; hi: 0 */
    for (t = 1; t + 1 < w; t++)
        a = two_rows_step(r0, r1, above, x0, x1, t, a, &c, bpp, 1);
    a = two_rows_step(r0, r1, above, x0, x1, t, a, &c, bpp, 0); /* t = w - 1 */
    /* row y+1, last pixel: a = x1[w-2], b = x0[w-1], c = x0[w-2] */
    size_t i = (w - 1) * bpp;
    for (k = 0; k < bpp; k++)
        x1[i + k] = (uint8_t)(r1[i + k] + paeth_bl(x1[i + k - bpp], x0[i + k], x0[i + k - bpp]));
}
#endif

/* Whether rows r0 and r1 (filter bytes included) are undone together by paeth_two_rows: both
 * Paeth, pixels of 3 or 4 bytes, at least 2 pixels, and r0 a photograph's row (fewer than half of
 * its residuals zero; a label map's rows go to the run-copying path instead). */
static int two_paeth_rows(const uint8_t *r0, const uint8_t *r1, size_t n, size_t bpp)
{
#ifdef SEGDATA_TWO_ROWS
    if (r0[0] != 4 || r1[0] != 4 || (bpp != 3 && bpp != 4) || n < 2 * bpp || n % bpp)
        return 0;
    size_t zeros = 0;
    for (size_t i = 1; i <= n; i++)
        zeros += r0[i] == 0;
    return zeros * 2 < n;
#else
    (void)r0, (void)r1, (void)n, (void)bpp;
    return 0;
#endif
}

static void unfilter_two_rows(const uint8_t *r0, const uint8_t *r1, const uint8_t *above, uint8_t *x0, uint8_t *x1,
                              size_t n, size_t bpp)
{
#ifdef SEGDATA_TWO_ROWS
    if (bpp == 3)
        paeth_two_rows(r0 + 1, r1 + 1, above, x0, x1, n, 3);
    else
        paeth_two_rows(r0 + 1, r1 + 1, above, x0, x1, n, 4);
#else
    (void)r0, (void)r1, (void)above, (void)x0, (void)x1, (void)n, (void)bpp;
#endif
}

/* Unfilter one row: r = filtered bytes, b = the unfiltered row above (zeros for the first), x =
 * output. n = bytes per row, bpp = bytes per complete pixel (at least 1). Returns -1 on an unknown
 * filter type. */
static int unfilter_row(int type, const uint8_t *r, const uint8_t *b, uint8_t *x, size_t n, size_t bpp)
{
    size_t i;
    switch (type) {
    case 0: /* None */
        memcpy(x, r, n);
        return 0;
    case 1: /* Sub */
        for (i = 0; i < bpp && i < n; i++)
            x[i] = r[i];
        for (; i < n; i++)
            x[i] = (uint8_t)(r[i] + x[i - bpp]);
        return 0;
    case 2: /* Up */
        for (i = 0; i < n; i++)
            x[i] = (uint8_t)(r[i] + b[i]);
        return 0;
    case 3: /* Average */
        if (n % bpp == 0) {
            if (bpp == 3) {
                average_pixels(r, b, x, n, 3);
                return 0;
            }
            if (bpp == 4) {
                average_pixels(r, b, x, n, 4);
                return 0;
            }
        }
        for (i = 0; i < bpp && i < n; i++)
            x[i] = (uint8_t)(r[i] + (b[i] >> 1));
        for (; i < n; i++)
            x[i] = (uint8_t)(r[i] + ((x[i - bpp] + b[i]) >> 1));
        return 0;
    case 4: /* Paeth */
        if (n % bpp == 0) {
            if (bpp == 3) {
                paeth_pixels(r, b, x, n, 3);
                return 0;
            }
            if (bpp == 4) {
                paeth_pixels(r, b, x, n, 4);
                return 0;
            }
            if (bpp == 6) {
                paeth_pixels(r, b, x, n, 6);
                return 0;
            }
            if (bpp == 8) {
                paeth_pixels(r, b, x, n, 8);
                return 0;
            }
        }
        for (i = 0; i < bpp && i < n; i++)
            x[i] = (uint8_t)(r[i] + b[i]); /* a = c = 0: the predictor is b */
        while (i < n) {
            if (memcmp(x + i - bpp, b + i - bpp, bpp) == 0) {
                /* in step with the row above: up to the next non-zero residual, every byte is
                 * the one above */
                size_t j = i;
                while (j + 8 <= n && zero8(r + j))
                    j += 8;
                while (j < n && r[j] == 0)
                    j++;
                memcpy(x + i, b + i, j - i);
                i = j;
                if (i == n)
                    break;
            }
            x[i] = (uint8_t)(r[i] + paeth(x[i - bpp], b[i], b[i - bpp]));
            i++;
        }
        return 0;
    default:
        return -1;
    }
}

/* Unfilter `row` (its filter byte, then n bytes) into x0, and the next row into x1 as well when
 * the two go together (has_next: there is a next row; two_paeth_rows). Returns the rows done,
 * 1 or 2, or 0 on an unknown filter type. */
static int unfilter_next(const uint8_t *row, int has_next, const uint8_t *above, uint8_t *x0, uint8_t *x1, size_t n,
                         size_t bpp)
{
    if (has_next && two_paeth_rows(row, row + n + 1, n, bpp)) {
        unfilter_two_rows(row, row + n + 1, above, x0, x1, n, bpp);
        return 2;
    }
    return unfilter_row(row[0], row + 1, above, x0, n, bpp) < 0 ? 0 : 1;
}

static void swap16(uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint16_t v;
        memcpy(&v, p + i, 2);
        v = (uint16_t)((v >> 8) | (v << 8));
        memcpy(p + i, &v, 2);
    }
}

PyDoc_STRVAR(unfilter_doc,
"unfilter(src, dst, height, rowbytes, bpp, swap16)\n"
"--\n\n"
"Undo PNG filtering of a non-interlaced image.\n\n"
"src: the inflated IDAT data, height * (1 + rowbytes) bytes (a filter-type byte per row).\n"
"dst: a writable contiguous buffer of height * rowbytes bytes, receives the pixels.\n"
"bpp: bytes per complete pixel (PNG's filter unit). swap16: byte-swap 16-bit samples from\n"
"PNG's big-endian order to little-endian, for a 16-bit image on a little-endian machine.\n"
"Raises ValueError on a size mismatch or an unknown filter type (naming the row, 0-based).");

static PyObject *unfilter(PyObject *self, PyObject *args)
{
    Py_buffer src, dst;
    Py_ssize_t height, rowbytes, bpp;
    int swap;
    if (!PyArg_ParseTuple(args, "y*w*nnnp", &src, &dst, &height, &rowbytes, &bpp, &swap))
        return NULL;
    PyObject *result = NULL;
    uint8_t *zeros = NULL;
    if (height < 0 || rowbytes < 0 || bpp < 1) {
        PyErr_SetString(PyExc_ValueError, "height and rowbytes must be >= 0, bpp >= 1");
        goto done;
    }
    if (height > 0 && rowbytes >= PY_SSIZE_T_MAX / height) { /* height * (rowbytes + 1) would overflow */
        PyErr_Format(PyExc_ValueError, "%zd rows of %zd bytes is too large", height, rowbytes);
        goto done;
    }
    if (src.len != height * (rowbytes + 1)) {
        PyErr_Format(PyExc_ValueError, "image data is %zd bytes, expected %zd (%zd rows of 1 + %zd)",
                     src.len, height * (rowbytes + 1), height, rowbytes);
        goto done;
    }
    if (dst.len != height * rowbytes) {
        PyErr_Format(PyExc_ValueError, "output buffer is %zd bytes, expected %zd", dst.len, height * rowbytes);
        goto done;
    }
    zeros = calloc((size_t)rowbytes + 8, 1);
    if (zeros == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *in = src.buf;
    uint8_t *out = dst.buf;
    Py_ssize_t bad_row = -1;
    int bad_type = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t y = 0; y < height; y++) {
        const uint8_t *row = in + y * (rowbytes + 1);
        uint8_t *x = out + y * rowbytes;
        const uint8_t *above = y ? x - rowbytes : zeros;
        int done_rows = unfilter_next(row, y + 1 < height, above, x, x + rowbytes, (size_t)rowbytes, (size_t)bpp);
        if (done_rows == 0) {
            bad_row = y;
            bad_type = row[0];
            break;
        }
        if (swap && y) /* the row above is no longer needed as a predictor */
            swap16(x - rowbytes, (size_t)rowbytes);
        if (done_rows == 2) {
            if (swap) /* row y was the predictor of row y + 1 only */
                swap16(x, (size_t)rowbytes);
            y++;
        }
    }
    if (swap && bad_row < 0 && height)
        swap16(out + (height - 1) * rowbytes, (size_t)rowbytes);
    Py_END_ALLOW_THREADS
    if (bad_row >= 0) {
        PyErr_Format(PyExc_ValueError, "row %zd has filter type %d (PNG defines 0 to 4)", bad_row, bad_type);
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(zeros);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

/* Row y of an unfiltered 8-bit image (x: its pixels of `channels` bytes) into the planes R, G, B
 * of dst (each `plane` samples): uint8 as they are, or float32 through `lut` (value -> value /
 * 255) when lut is given. Grey (1 or 2 channels) goes to all three planes; alpha is dropped. */
static void write_planes(const uint8_t *x, void *dst, Py_ssize_t y, Py_ssize_t width, Py_ssize_t plane,
                         Py_ssize_t channels, const float *lut)
{
    const int o1 = channels >= 3 ? 1 : 0, o2 = channels >= 3 ? 2 : 0; /* offsets of G and B in a pixel */
    if (lut != NULL) {
        float *r = (float *)dst + y * width, *g = r + plane, *b = g + plane;
        for (Py_ssize_t i = 0; i < width; i++) {
            const uint8_t *px = x + i * channels;
            r[i] = lut[px[0]];
            g[i] = lut[px[o1]];
            b[i] = lut[px[o2]];
        }
    } else {
        uint8_t *r = (uint8_t *)dst + y * width, *g = r + plane, *b = g + plane;
        for (Py_ssize_t i = 0; i < width; i++) {
            const uint8_t *px = x + i * channels;
            r[i] = px[0];
            g[i] = px[o1];
            b[i] = px[o2];
        }
    }
}

PyDoc_STRVAR(unfilter_planes_doc,
"unfilter_planes(src, dst, height, width, channels, as_float)\n"
"--\n\n"
"Undo PNG filtering of a non-interlaced 8-bit image and write it as three planes (3, H, W).\n\n"
"src: the inflated IDAT data, height * (1 + width * channels) bytes. channels: 1 (grey, written\n"
"to all three planes), 2 (grey+alpha: grey to all three, alpha dropped), 3 (RGB) or 4 (RGBA,\n"
"alpha dropped). dst: a writable contiguous buffer of 3 * height * width uint8 (as_float\n"
"false) or float32 (as_float true: each value v as the float32 product v * (1 / 255), the\n"
"figure torch's `tensor.float().mul_(1 / 255)` gives), plane by plane.\n"
"Raises ValueError on a size mismatch or an unknown filter type (naming the row, 0-based).");

static PyObject *unfilter_planes(PyObject *self, PyObject *args)
{
    Py_buffer src, dst;
    Py_ssize_t height, width, channels;
    int as_float;
    if (!PyArg_ParseTuple(args, "y*w*nnnp", &src, &dst, &height, &width, &channels, &as_float))
        return NULL;
    PyObject *result = NULL;
    uint8_t *rows = NULL;
    if (height < 0 || width < 0 || channels < 1 || channels > 4) {
        PyErr_SetString(PyExc_ValueError, "height and width must be >= 0, channels 1 to 4");
        goto done;
    }
    if (width > 0 && (width >= PY_SSIZE_T_MAX / 16 || height >= PY_SSIZE_T_MAX / 16 / width)) {
        /* 12 * height * width (the float planes) would overflow */
        PyErr_Format(PyExc_ValueError, "%zd rows of %zd pixels is too large", height, width);
        goto done;
    }
    Py_ssize_t rowbytes = width * channels;
    if (src.len != height * (rowbytes + 1)) {
        PyErr_Format(PyExc_ValueError, "image data is %zd bytes, expected %zd (%zd rows of 1 + %zd)",
                     src.len, height * (rowbytes + 1), height, rowbytes);
        goto done;
    }
    Py_ssize_t plane = height * width, item = as_float ? 4 : 1;
    if (dst.len != 3 * plane * item) {
        PyErr_Format(PyExc_ValueError, "output buffer is %zd bytes, expected %zd", dst.len, 3 * plane * item);
        goto done;
    }
    rows = calloc(4 * (size_t)rowbytes + 8, 1); /* zeros (the row above the first), three rows in turn */
    if (rows == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    float lut[256];
    const float scale = (float)(1.0 / 255.0);
    for (int v = 0; v < 256; v++)
        lut[v] = (float)v * scale;
    const uint8_t *in = src.buf;
    Py_ssize_t bad_row = -1;
    int bad_type = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *above = rows;
    for (Py_ssize_t y = 0; y < height; y++) {
        const uint8_t *row = in + y * (rowbytes + 1);
        uint8_t *x = rows + (size_t)rowbytes * (1 + y % 3);
        uint8_t *x1 = rows + (size_t)rowbytes * (1 + (y + 1) % 3);
        int done_rows = unfilter_next(row, y + 1 < height, above, x, x1, (size_t)rowbytes, (size_t)channels);
        if (done_rows == 0) {
            bad_row = y;
            bad_type = row[0];
            break;
        }
        write_planes(x, dst.buf, y, width, plane, channels, as_float ? lut : NULL);
        if (done_rows == 2) {
            y++;
            x = rows + (size_t)rowbytes * (1 + y % 3);
            write_planes(x, dst.buf, y, width, plane, channels, as_float ? lut : NULL);
        }
        above = x;
    }
    Py_END_ALLOW_THREADS
    if (bad_row >= 0) {
        PyErr_Format(PyExc_ValueError, "row %zd has filter type %d (PNG defines 0 to 4)", bad_row, bad_type);
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(rows);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

static PyMethodDef methods[] = {
    {"unfilter", unfilter, METH_VARARGS, unfilter_doc},
    {"unfilter_planes", unfilter_planes, METH_VARARGS, unfilter_planes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_png", "PNG row unfiltering for segdata.maskio (pixels as stored, or as (3, H, W) planes).", -1, methods,
};

PyMODINIT_FUNC PyInit__png(void)
{
    return PyModule_Create(&module);
}
