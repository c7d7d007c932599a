#!/usr/bin/env python3
"""tools/gen_png_corpus.py: the seed corpus of tests/fuzz/fuzz_png.c
(tests/fuzz/corpus/png/), tiny PNGs written byte by byte with the standard
library only, one per path of the reader: grey 1/8/16-bit, grey+alpha, RGB
8/16-bit, RGBA, palette with tRNS, Adam7 interlacing, gAMA/cHRM (libpng's
rgb_to_gray then works in linear light), tEXt/zTXt/iTXt before and after the
image data, an IDAT split over several chunks, and the inputs fuzzing found
(regress_*).

Run from the repository root (any Python 3):
    python3 tools/gen_png_corpus.py
"""
import os
import struct
import zlib

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz",
                                    "corpus", "png"))

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """Samples (ints) of one row -> bytes at the given bit depth."""
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    out, acc, nbits = bytearray(), 0, 0
    for s in samples:
        acc = acc << depth | s
        nbits += depth
        if nbits == 8:
            out.append(acc)
            acc, nbits = 0, 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def image_data(pixels, w, h, color, depth, interlace):
    """pixels[y][x] is a tuple of samples; filter 0 on every row (and pass)."""
    raw = bytearray()
    if not interlace:
        passes = [(0, 0, 1, 1)]
    else:
        passes = ADAM7
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, w, dx))
        if not xs:
            continue
        for y in range(y0, h, dy):
            raw.append(0)
            raw += pack_row([s for x in xs for s in pixels[y][x]], depth)
    return bytes(raw)


def png(w, h, color, depth, interlace=0, pre=(), post=(), split=1, palette=None, trns=None):
    n = CHANNELS[color]
    maxv = (1 << depth) - 1
    if color == 3:
        pixels = [[((x * 3 + y) % len(palette),) for x in range(w)] for y in range(h)]
    else:
        pixels = [[tuple((x * 37 + y * 11 + c * 5) * 2654435761 % (maxv + 1) for c in range(n))
                   for x in range(w)] for y in range(h)]
    data = zlib.compress(image_data(pixels, w, h, color, depth, interlace), 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    for c in pre:
        out += c
    if palette:
        out += chunk(b"PLTE", b"".join(bytes(p) for p in palette))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    step = max(1, (len(data) + split - 1) // split)
    for i in range(0, len(data), step):
        out += chunk(b"IDAT", data[i:i + step])
    for c in post:
        out += c
    return out + chunk(b"IEND", b"")


def text(key, value):
    return chunk(b"tEXt", key + b"\0" + value)


def ztext(key, value):
    return chunk(b"zTXt", key + b"\0\0" + zlib.compress(value))


def itext(key, value, compressed=False):
    body = value.encode("utf-8")
    if compressed:
        body = zlib.compress(body)
    return chunk(b"iTXt", key + b"\0" + bytes([1 if compressed else 0, 0]) + b"en\0" + key + b"\0" + body)


def main():
    os.makedirs(OUT, exist_ok=True)
    pal = [(i * 40 % 256, 255 - i * 30, i * i % 256) for i in range(8)]
    gama = chunk(b"gAMA", struct.pack(">I", 45455))
    chrm = chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    files = {
        "grey8.png": png(5, 3, 0, 8),
        "grey1.png": png(9, 3, 0, 1),
        "grey4_trns.png": png(6, 2, 0, 4, trns=struct.pack(">H", 3)),
        "grey16.png": png(3, 3, 0, 16, pre=[text(b"parameters", b"a cat\nSteps: 50")]),
        "grey_alpha_adam7.png": png(5, 5, 4, 8, interlace=1),
        "rgb8.png": png(4, 3, 2, 8, pre=[text(b"prompt", b"caf\xe9")], post=[ztext(b"late", b"after")]),
        "rgb16_adam7.png": png(4, 4, 2, 16, interlace=1, pre=[gama, chrm]),
        "rgba8_split.png": png(7, 4, 6, 8, split=3, pre=[itext(b"prompt", "\u732b \u2603")]),
        "rgba16.png": png(2, 2, 6, 16, post=[itext(b"z", "zipped \u00e9", compressed=True)]),
        "palette4_trns.png": png(6, 3, 3, 4, palette=pal, trns=bytes(range(0, 240, 40))),
        "palette8_adam7.png": png(9, 9, 3, 8, interlace=1, palette=pal, pre=[gama]),
    }
    # regression (fuzz_png): a chunk that claims 1.7 GB in a 51-byte file;
    # libpng 1.6.39 would malloc the claimed length (io/png.c src_prescan)
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 3 << 16, 1, 0, 0, 0, 0))
    files["regress_huge_chunk_length.png"] = (b"\x89PNG\r\n\x1a\n" + ihdr + struct.pack(">I", 0x6971184E) +
                                              b"iTXt" + bytes(range(0xB6, 0xC1)))
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(files)} files to {OUT} ({sum(len(d) for d in files.values())} bytes)")


if __name__ == "__main__":
    main()
