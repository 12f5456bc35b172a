/*
 * segdata._runs, the breakdown rules: on count_pair's dense table of segment pairs (pixels and
 * band pixels per (segment of A, segment of B)), the pixels of segmentation quality, naming and
 * quantity disagreement as consistency.py's _categories_dense defines them, and the class pairs.
 */
#include "runs.h"

static int cmp_pair(const void *x, const void *y)
{
    const ClassPair *p = x, *q = y;
    if (p->a != q->a)
        return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

/* The breakdown rules of consistency.py (_categories_dense, whose docs define them) on the
 * dense (na, nb) table t of segment pairs, and the class pairs.
 * breakdown[3]: pixels of quality, naming, quantity. Returns the number of class pairs written
 * to `pairs` (room for na * nb), sorted by (class of A, class of B); -1 when out of memory. */
RUNS_INTERNAL Py_ssize_t categorize(const int64_t *t, const int64_t *tb, size_t na, size_t nb, const int64_t *ca,
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
