/* The freescale command: parses the command line and hands each subcommand
 * to the layer that does the work. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "comm/comm.h"
#include "coordinator/commands.h"
#include "core/core.h"
#include "io/io.h"
#include "jobs/jobs.h"
#include "kernels/kernels.h"
#include "worker/worker.h"



static void usage(FILE *f) {
    fprintf(f,
            "usage: freescale <command> [options]\n"
            "\n"
            "commands:\n"
            "  render JOB.yaml [--set key=value ...] [--stats] [--progress bar|lines|none]\n"
            "        the job's prompt to a PNG (run it under mpirun for several ranks: same pixels);\n"
            "        with no model in the job, a tiny built-in model whose pictures are noise\n"
            "  inspect MODEL [--all]   a model (SGM .safetensors or diffusers folder): components,\n"
            "        dtypes, parameter counts, UNet configuration and binding (no weight read);\n"
            "        any other .safetensors file: tensors, dtypes, shapes, parameter count\n"
            "  plan JOB.yaml [--ranks N[,N...]] [--mem GB] [--set key=value ...]\n"
            "        before spending GPU hours: per stage and rank count (default 1,2,4,8), the\n"
            "        latent rows, UNet/VAE activations, weights and peak memory per rank, UNet\n"
            "        GFLOP; one process, no weights read. --mem: which counts fit and the\n"
            "        smallest that does (exit 3 when the first count listed does not fit)\n"
            "  validate JOB.yaml [--set key=value ...]\n"
            "        reads and checks a job file (see jobs/example.yaml) and prints the resolved job\n"
            "  keys    every job key: its values, default and what it does (a Markdown table)\n"
            "  check [--size H] [--channels C] [--dilation D] [--seed S]\n"
            "        a GroupNorm+SiLU+3x3-conv block on row strips (run it under mpirun), with\n"
            "        the render's exact GroupNorm sums and halos,\n"
            "        compared bit for bit with the whole map; prints time and traffic\n"
            "  version\n"
            "\n"
            "Real pictures need SDXL base 1.0 weights: set `model:` in the job to\n"
            "sd_xl_base_1.0.safetensors or to the diffusers folder.\n");
}

static int parse_int(const char *opt, const char *val, int lo, int hi, int *out) {
    char *end;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || *end || v < lo || v > hi) {
        fprintf(stderr, "freescale check: %s wants an integer in [%d, %d]\n", opt, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* freescale keys: the job key table as Markdown; the README's "Job files"
 * table is this output (tests/cli_keys.sh). */
static int cmd_keys(int argc, char **argv) {
    (void)argv;
    if (argc) {
        fprintf(stderr, "freescale keys: takes no arguments\n");
        return 2;
    }
    size_t need = fs_job_keys_markdown(NULL, 0);
    char *text = malloc(need + 1);
    if (!text) {
        fprintf(stderr, "freescale keys: out of memory\n");
        return 1;
    }
    fs_job_keys_markdown(text, need + 1);
    fputs(text, stdout);
    free(text);
    return 0;
}

static int cmd_check(int argc, char **argv) {
    fs_check_params p = fs_check_default_params();
    int seed = 1;
    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(argv[i], "--size")) bad = parse_int("--size", v, 1, 4096, &p.size), i++;
        else if (!strcmp(argv[i], "--channels")) bad = parse_int("--channels", v, 32, 4096, &p.channels), i++;
        else if (!strcmp(argv[i], "--dilation")) bad = parse_int("--dilation", v, 1, 8, &p.dilation), i++;
        else if (!strcmp(argv[i], "--seed")) bad = parse_int("--seed", v, 0, 1 << 30, &seed), i++;
        else { fprintf(stderr, "freescale check: unknown option '%s'\n", argv[i]); return 2; }
        if (bad) return 2;
    }
    p.seed = (uint64_t)seed;
    fs_error err = {0};
    fs_comm *comm = NULL;
    if (fs_comm_init(NULL, NULL, &comm, &err)) {
        fprintf(stderr, "freescale: %s\n", err.msg);
        return 1;
    }
    fs_threads_init(0);
    int rank = fs_comm_rank(comm), size = fs_comm_size(comm);
    fs_check_report rep;
    fs_code rc = fs_worker_check(comm, &p, &rep, &err);
    /* Rank 0 prints every rank's line: output forwarded by mpirun from
     * several ranks comes in no fixed order. */
    enum { LINE = 256 };
    char line[LINE] = {0}, *lines = rank == 0 ? calloc((size_t)size, LINE) : NULL;
    if (!rc) {
        int at = snprintf(line, LINE, "  rank %d: strip pass %.3f s; sent", rank, rep.seconds_strips);
        for (int k = 0; k < FS_TRAFFIC_KINDS && at < LINE; k++)
            at += snprintf(line + at, LINE - at, " %s %.1f kB in %" PRIu64 " calls%s",
                           fs_traffic_name(k), rep.traffic[k].bytes_sent / 1e3,
                           rep.traffic[k].calls, k + 1 < FS_TRAFFIC_KINDS ? "," : "");
        rc = fs_comm_gather_bytes(comm, line, LINE, lines, 0, &err);
    }
    if (!rc && rank == 0) {
        printf("check: %d x %d x %d map, batch %d, GroupNorm(32, exact sums)+SiLU+conv3x3 "
               "(dilation %d), "
               "%d rank(s), %d thread(s) each\n",
               p.size, p.size, p.channels, p.batch, p.dilation, size, fs_threads_count());
        for (int r = 0; r < size; r++) printf("%s\n", lines + (size_t)r * LINE);
        printf("  whole map on one rank: %.3f s\n", rep.seconds_whole);
        printf("strips vs whole map: %s (%zu of %zu values differ)\n",
               rep.identical ? "bit-identical" : "DIFFERENT", rep.mismatches,
               (size_t)p.batch * p.size * p.size * p.channels);
    }
    free(lines);
    if (rc) fprintf(stderr, "freescale: rank %d: %s\n", rank, err.msg);
    fs_comm_free(comm);
    return rc ? 1 : rep.identical ? 0 : 3;
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { usage(stdout); return 0; }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        char why[256];
        int gpus = fs_cuda_available(why, sizeof why);
        printf("freescale %s (CUDA: %s)\n", FS_VERSION, gpus ? "available" : why);
        return 0;
    }
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "render")) return cmd_render(argc - 2, argv + 2);
    if (!strcmp(cmd, "validate")) return cmd_validate(argc - 2, argv + 2);
    if (!strcmp(cmd, "plan")) return cmd_plan(argc - 2, argv + 2);
    if (!strcmp(cmd, "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "keys")) return cmd_keys(argc - 2, argv + 2);
    fprintf(stderr, "freescale: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
