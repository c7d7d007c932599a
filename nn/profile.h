/* nn/profile.h: what the helpers of nn/ (ops.c, strips.c, ops_fs.c) share
 * and nothing else reads: FS_PROFILE's op table (nn/profile.c; nn.h
 * declares what callers use: nn_profile_eval) and the call of a backend op. */
#ifndef FS_NN_PROFILE_H
#define FS_NN_PROFILE_H

#include "nn/nn.h"

/* The pass's backend's op `name`, with the backend as its first argument. */
#define NN_OP(f, name, ...) (nn_backend(f)->op->name(nn_backend(f), __VA_ARGS__))

enum nn_prof_kind { PK_CONV, PK_LINEAR, PK_ATTN, PK_GN, PK_LN, PK_GEGLU, PK_ELEM, PK_MOVE,
                    PK_SMALL, PK_COUNT };

typedef struct nn_prof_time { double wall, cpu; } nn_prof_time;

/* Start time of an op; wall 0 when not profiling (or in the dry pass). */
nn_prof_time nn_prof_t(const nn_ctx *f);
/* Adds the op that started at t0 to the table row (kind, f->level, shape). */
void nn_prof_add(const nn_ctx *f, nn_prof_time t0, int kind, double flop, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
