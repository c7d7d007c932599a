/* The thread pool is OpenMP; BLAS is pinned to one thread inside it (see
 * core.h for why: OpenBLAS's own threading changes results). */
#include <omp.h>
#include <stdlib.h>
#include <time.h>
#include "core/core.h"

void openblas_set_num_threads(int num_threads);  /* OpenBLAS extension */

static int thread_count = 1;

void fs_threads_init(int n) {
    if (n <= 0) {
        const char *env = getenv("FS_THREADS");
        n = env ? atoi(env) : 0;
    }
    if (n <= 0) n = omp_get_num_procs();
    if (n < 1) n = 1;
    thread_count = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
}

int fs_threads_count(void) { return thread_count; }

double fs_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
