/* CUDA ops against their CPU references. Skips (ctest code 77) when the
 * build has no CUDA or the machine has no usable GPU. */
#include <stdio.h>
#include "check.h"
#include "core/core.h"
#include "kernels/kernels.h"

int main(void) {
    char why[256];
    if (!fs_cuda_available(why, sizeof why)) {
        printf("test_cuda: SKIP: %s\n", why);
        return 77;
    }
    const size_t n = 1000003;
    float *x = fs_alloc(n * 4), *ref = fs_alloc(n * 4), *got = fs_alloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = (float)fs_rng_normal(3, 0, i) * 4;
    fs_silu_ref(x, ref, n);
    fs_error err = {0};
    CHECK(fs_cuda_silu(x, got, n, &err) == FS_OK, "%s", err.msg);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]) / (fabs(ref[i]) + 1e-6);
        if (d > worst) worst = d;
    }
    CHECK(worst < 1e-5, "silu relative error %g", worst);
    fs_free(x); fs_free(ref); fs_free(got);
    return check_report("test_cuda");
}
