/* freescale inspect: what is in a model (an SGM single file or a diffusers
 * folder) before any GPU time is spent on it: components found, layout,
 * dtypes, parameter counts, the UNet configuration, and whether every UNet
 * tensor binds (names and shapes; no weight is read or converted). A
 * safetensors file that is not a model gets the plain tensor listing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "coordinator/commands.h"
#include "core/core.h"
#include "io/io.h"
#include "unet/unet.h"

enum { N_COMPONENTS = 4 };
static const struct {
    const char *name;        /* diffusers folder */
    const char *sgm_prefix;  /* tensor prefix in an SGM single file */
    const char *files[2];    /* diffusers weight files, preferred first */
} components[N_COMPONENTS] = {
    {"unet", "model.diffusion_model.",
     {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}},
    {"vae", "first_stage_model.",
     {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}},
    {"text_encoder", "conditioner.embedders.0.", {"model.safetensors", "model.fp16.safetensors"}},
    {"text_encoder_2", "conditioner.embedders.1.", {"model.safetensors", "model.fp16.safetensors"}},
};

typedef struct {
    size_t tensors;
    uint64_t params, bytes, per_dtype[FS_DTYPE_COUNT];
} tally;

static void add(tally *t, const fs_st_tensor *x) {
    t->tensors++;
    t->params += x->numel;
    t->bytes += x->end - x->begin;
    t->per_dtype[x->dtype] += x->numel;
}

static void print_tally(const char *label, const tally *t, const char *file) {
    printf("  %-15s %5zu tensors %11" PRIu64 " parameters %8.1f MB  ", label, t->tensors,
           t->params, t->bytes / 1e6);
    const char *sep = "";
    for (int d = 0; d < FS_DTYPE_COUNT; d++)
        if (t->per_dtype[d]) { printf("%s%s", sep, fs_dtype_name((fs_dtype)d)); sep = ","; }
    printf("%s%s\n", file ? "  " : "", file ? file : "");
}

static void print_tensor(const fs_st_tensor *t) {
    printf("  %-64s %-5s [", t->name, fs_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim; d++) printf("%s%" PRId64, d ? ", " : "", t->shape[d]);
    printf("]\n");
}

/* Today's listing of any safetensors file (the first 20 tensors, or all). */
static int list_file(fs_safetensors *st, const char *path, int all) {
    size_t n = fs_safetensors_count(st);
    tally t = {0};
    for (size_t i = 0; i < n; i++) {
        const fs_st_tensor *x = fs_safetensors_at(st, i);
        add(&t, x);
        if (all || i < 20) print_tensor(x);
        else if (i == 20) printf("  ... (%zu more; --all lists every tensor)\n", n - 20);
    }
    printf("%s: %zu tensors, %" PRIu64 " parameters, %.1f MB of data\n", path, n, t.params,
           t.bytes / 1e6);
    for (int d = 0; d < FS_DTYPE_COUNT; d++)
        if (t.per_dtype[d])
            printf("  %-5s %" PRIu64 " parameters\n", fs_dtype_name((fs_dtype)d), t.per_dtype[d]);
    return 0;
}

static void print_ints(const char *label, const int *v, int n) {
    printf("%s ", label);
    for (int i = 0; i < n; i++) printf("%s%d", i ? "/" : "", v[i]);
}

/* Binds the UNet (no weights read) and prints its configuration. */
static int inspect_unet(const char *path, int config_from_file) {
    fs_unet *u = NULL;
    fs_error err = {0};
    double t0 = fs_now();
    if (fs_unet_open(path, &u, &err)) {
        printf("UNet: cannot bind: %s\n", err.msg);
        return 1;
    }
    double dt = fs_now() - t0;
    const fs_unet_info *in = fs_unet_get_info(u);
    const fs_unet_config *c = &in->config;
    printf("UNet (%s, %s):\n", in->weights_path,
           config_from_file ? "config from config.json" : "config inferred from shapes");
    printf("  levels %d: ", c->levels);
    print_ints("channels", c->channels, c->levels);
    print_ints(", transformer depth", c->depth, c->levels);
    printf(", mid depth %d", c->depth_mid);
    print_ints(", heads", c->heads, c->levels);
    printf("\n  layers_per_block %d, in/out channels %d/%d, context_dim %d, adm_in_channels %d, "
           "time_embed_dim %d, groups %d, eps %g (resnets) / %g (transformers)\n",
           c->layers_per_block, c->in_channels, c->out_channels, c->context_dim,
           c->adm_in_channels, c->time_embed_dim, c->groups, c->eps_resnet, c->eps_transformer);
    printf("  bound %zu of %zu UNet tensors in %.3f s (names and shapes; no weight read), "
           "%" PRIu64 " parameters (", in->tensors_bound, in->tensors_bound, dt, in->params);
    const char *sep = "";
    for (int d = 0; d < FS_DTYPE_COUNT; d++)
        if (in->params_by_dtype[d]) {
            printf("%s%s %" PRIu64, sep, fs_dtype_name((fs_dtype)d), in->params_by_dtype[d]);
            sep = ", ";
        }
    printf("), %.2f GB as float32\n", in->params * 4.0 / 1e9);
    if (in->tensors_unexpected)
        printf("  %zu unexpected tensors in the UNet's namespace (not used), the first: %s\n",
               in->tensors_unexpected, in->first_unexpected);
    fs_unet_free(u);
    return 0;
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int inspect_folder(const char *path, int all) {
    char dir[2048], file[2300];
    int found = 0, rc = 0, unet_here = 0;
    snprintf(file, sizeof file, "%s/config.json", path);
    /* a unet folder itself: config.json beside diffusion_pytorch_model* */
    for (int k = 0; k < 2 && is_file(file); k++) {
        snprintf(file, sizeof file, "%s/%s", path, components[0].files[k]);
        unet_here |= is_file(file);
        snprintf(file, sizeof file, "%s/config.json", path);
    }
    snprintf(file, sizeof file, "%s/model_index.json", path);
    printf("%s: diffusers %s folder\n", path,
           unet_here ? "unet" : is_file(file) ? "pipeline" : "model");
    printf("components:\n");
    for (int c = 0; c < N_COMPONENTS; c++) {
        if (unet_here && c) break;
        snprintf(dir, sizeof dir, "%s%s%s", path, unet_here ? "" : "/",
                 unet_here ? "" : components[c].name);
        const char *used = NULL;
        for (int k = 0; k < 2 && !used; k++) {
            snprintf(file, sizeof file, "%s/%s", dir, components[c].files[k]);
            if (is_file(file)) used = components[c].files[k];
        }
        if (!used) { printf("  %-15s not found\n", components[c].name); continue; }
        fs_safetensors *st = NULL;
        fs_error err = {0};
        if (fs_safetensors_open(file, &st, &err)) {
            printf("  %-15s error: %s\n", components[c].name, err.msg);
            rc = 1;
            continue;
        }
        tally t = {0};
        for (size_t i = 0; i < fs_safetensors_count(st); i++) {
            add(&t, fs_safetensors_at(st, i));
            if (all) print_tensor(fs_safetensors_at(st, i));
        }
        print_tally(components[c].name, &t, used);
        fs_safetensors_close(st);
        found |= c == 0;
    }
    if (!found) return 1;
    return inspect_unet(path, 1) || rc;
}

static int inspect_file(const char *path, int all) {
    fs_safetensors *st = NULL;
    fs_error err = {0};
    if (fs_safetensors_open(path, &st, &err)) {
        fprintf(stderr, "freescale: %s\n", err.msg);
        return 1;
    }
    size_t n = fs_safetensors_count(st);
    tally parts[N_COMPONENTS + 1] = {{0}}, total = {0};
    for (size_t i = 0; i < n; i++) {
        const fs_st_tensor *x = fs_safetensors_at(st, i);
        int c = 0;
        while (c < N_COMPONENTS &&
               strncmp(x->name, components[c].sgm_prefix, strlen(components[c].sgm_prefix)))
            c++;
        add(&parts[c], x);
        add(&total, x);
    }
    int model = 0;
    for (int c = 0; c < N_COMPONENTS; c++) model |= parts[c].tensors > 0;
    if (!model) {
        int rc = list_file(st, path, all);
        fs_safetensors_close(st);
        return rc;
    }
    if (all)
        for (size_t i = 0; i < n; i++) print_tensor(fs_safetensors_at(st, i));
    printf("%s: SGM single-file model, %zu tensors, %" PRIu64 " parameters, %.2f GB of data\n",
           path, n, total.params, total.bytes / 1e9);
    printf("components:\n");
    for (int c = 0; c < N_COMPONENTS; c++) {
        if (parts[c].tensors) print_tally(components[c].name, &parts[c], NULL);
        else printf("  %-15s not found\n", components[c].name);
    }
    if (parts[N_COMPONENTS].tensors) print_tally("(other)", &parts[N_COMPONENTS], NULL);
    fs_safetensors_close(st);
    if (!parts[0].tensors) return 0;
    return inspect_unet(path, 0);
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int all = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--all")) all = 1;
        else if (!path) path = argv[i];
        else { fprintf(stderr, "freescale inspect: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!path) { fprintf(stderr, "freescale inspect: which model or file?\n"); return 2; }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "freescale inspect: %s: no such file or folder\n", path);
        return 1;
    }
    fs_threads_init(0);
    return S_ISDIR(sb.st_mode) ? inspect_folder(path, all) : inspect_file(path, all);
}
