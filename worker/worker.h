/* worker: what every rank runs on its strip. Today: the distributed
 * exactness check (a GroupNorm + SiLU + 3x3 convolution block on strips,
 * compared bit for bit with the whole-map result). The sampler loop and the
 * network calls of a render stage come here next. */
#ifndef FS_WORKER_H
#define FS_WORKER_H
#include "comm/comm.h"
#include "core/core.h"

typedef struct fs_check_params {
    int size;        /* latent map is size x size */
    int channels;    /* multiple of 32 (GroupNorm groups) */
    int batch;       /* 2: the CFG pair */
    int dilation;    /* of the 3x3 convolution */
    uint64_t seed;
} fs_check_params;

typedef struct fs_check_report {
    int identical;            /* gathered strips == whole map, bit for bit */
    size_t mismatches;        /* elements that differ */
    double seconds_strips;    /* this rank's strip pass (max over ranks) */
    double seconds_whole;     /* the whole map on one rank */
    fs_traffic traffic[FS_TRAFFIC_KINDS];  /* this rank's traffic in the strip pass */
} fs_check_report;

fs_check_params fs_check_default_params(void);
/* Collective: every rank calls it; the report is valid on every rank. */
fs_code fs_worker_check(fs_comm *comm, const fs_check_params *p, fs_check_report *report,
                        fs_error *err);
#endif
