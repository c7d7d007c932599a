/* The freescale subcommands that live in their own files; each takes the
 * arguments after its name and returns the process exit status. */
#ifndef FS_COORDINATOR_COMMANDS_H
#define FS_COORDINATOR_COMMANDS_H

/* freescale inspect MODEL|FILE [--all]: a model's components, layout, dtypes,
 * parameter counts, UNet configuration and binding; any other safetensors
 * file: its tensors. */
int cmd_inspect(int argc, char **argv);

#endif
