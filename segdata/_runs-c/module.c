/*
 * segdata/_runs-c/module.c: the Python module segdata._runs (argument parsing, buffers, method
 * table, PyInit); the work is in the other files of this folder (runs.h lists them).
 *
 * segdata._runs: the per-image kernel of the consistency analysis (analyses/consistency/counting.py calls it).
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
#include "runs.h"

/* ------------------------------------------------------------------ map views */

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

/* ------------------------------------------------------------------ joint runs */

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

/* ------------------------------------------------------------------ one pair, counted */

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
    runs_cpu_init();
    return PyModule_Create(&module);
}
