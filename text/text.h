/* text: prompts to SDXL conditioning. The CLIP BPE tokenizer (tokenizer.h)
 * and the two text encoders with the SDXL conditioning (encoders.h). */
#ifndef FS_TEXT_H
#define FS_TEXT_H
#include "text/tokenizer.h"
#include "text/encoders.h"
#endif
