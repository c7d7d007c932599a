/* The freescale command. */
#include <stdio.h>
#include <string.h>
#include "core/core.h"

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        printf("usage: freescale <command> ...\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "freescale: unknown command '%s'\n", argv[1]);
    return 2;
}
