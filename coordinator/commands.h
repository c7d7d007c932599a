/* The freescale subcommands that live in their own files; each takes the
 * arguments after its name and returns the process exit status. */
#ifndef FS_COORDINATOR_COMMANDS_H
#define FS_COORDINATOR_COMMANDS_H

/* freescale inspect MODEL|FILE [--all]: a model's components, layout, dtypes,
 * parameter counts, UNet configuration and binding; any other safetensors
 * file: its tensors. */
int cmd_inspect(int argc, char **argv);

/* freescale validate JOB.yaml [--set key=value ...]: the job read, overridden
 * and checked as render would; prints "JOB.yaml: ok" and the resolved job
 * (exit 0), the error with its file:line:column (exit 1), or the usage (2). */
int cmd_validate(int argc, char **argv);

/* freescale plan JOB.yaml [--ranks N[,N...]] [--mem GB] [--set key=value ...]:
 * memory and work per rank, per stage, for some rank counts (one process, no
 * weights read). Exit 0; 3 with --mem when the first count listed does not
 * fit (or is impossible); 1 on a bad job or model; 2 on bad arguments. */
int cmd_plan(int argc, char **argv);

/* freescale render JOB.yaml [--set key=value]... [--stats] [--progress
 * bar|lines|none]: the job's prompt to a PNG. Collective under mpirun. */
int cmd_render(int argc, char **argv);

/* The render of an already validated job (rank 0's copy is broadcast: the
 * other ranks' job may be anything), the PNG written by rank 0 through a
 * temporary file. Used by cmd_render and by the tests. */
#include "comm/comm.h"
#include "jobs/jobs.h"
#include "worker/worker.h"
typedef enum { COORD_PROGRESS_NONE = 0, COORD_PROGRESS_LINES, COORD_PROGRESS_BAR } coord_progress;
typedef struct coord_render_opts {
    coord_progress progress;
    int stats;                        /* print per-rank time, memory and traffic */
    const fs_render_hooks *extra;     /* tests: on_latent / on_image are passed through */
} coord_render_opts;
/* Returns FS_OK with *stopped set when Ctrl-C stopped it (no image written). */
fs_code coord_render(fs_comm *comm, fs_job *job, const coord_render_opts *opts, int *stopped,
                     fs_error *err);
/* The text chunks written into the PNG (key, value, ..., NULL; static storage
 * inside job_text: free nothing). */
void coord_png_text(const fs_job *job, const char *model_desc, char *params, size_t cap,
                    char *yaml, size_t yaml_cap, const char *kv[16]);

#endif
