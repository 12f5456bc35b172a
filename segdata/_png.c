/*
 * segdata._png: PNG row unfiltering (PNG specification, section 9), the part of PNG decoding that
 * no installed library exposes on its own.
 *
 * segdata.maskio inflates the IDAT stream with libdeflate (the `deflate` package) and calls
 * `unfilter` here; together they decode a Cityscapes 16-bit instanceIds map about ten times
 * faster than libspng, whose generic conversion path to grey+alpha dominates its time.
 *
 * Label maps are long runs of equal values: most Paeth- and Up-filtered bytes are zero. Where a
 * row agrees with the row above and the residual is zero, Paeth predicts the byte above (its
 * left neighbour equals its upper-left one), so the stretch up to the next non-zero residual
 * (found eight bytes at a time) is one copy of the row above. Everything else follows the
 * specification byte by byte.
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
        for (i = 0; i < bpp && i < n; i++)
            x[i] = (uint8_t)(r[i] + (b[i] >> 1));
        for (; i < n; i++)
            x[i] = (uint8_t)(r[i] + ((x[i - bpp] + b[i]) >> 1));
        return 0;
    case 4: /* Paeth */
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
        if (unfilter_row(row[0], row + 1, above, x, (size_t)rowbytes, (size_t)bpp) < 0) {
            bad_row = y;
            bad_type = row[0];
            break;
        }
        if (swap && y) /* the row above is no longer needed as a predictor */
            swap16(x - rowbytes, (size_t)rowbytes);
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

static PyMethodDef methods[] = {
    {"unfilter", unfilter, METH_VARARGS, unfilter_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_png", "PNG row unfiltering for segdata.maskio.", -1, methods,
};

PyMODINIT_FUNC PyInit__png(void)
{
    return PyModule_Create(&module);
}
