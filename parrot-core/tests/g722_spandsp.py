"""Encode or decode G.722 (64 kbit/s) with Debian's spandsp, for parrot-core/tests/g722_reference.rs.

usage: g722_spandsp.py encode IN.s16le OUT.g722
       g722_spandsp.py decode IN.g722 OUT.s16le

Calls libspandsp.so.2 (package libspandsp2) through ctypes: g722_encode_init / g722_encode and
g722_decode_init / g722_decode, 16 kHz linear PCM (native byte order), unpacked octets.
"""

import ctypes
import sys


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] not in ("encode", "decode"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, src, dst = sys.argv[1:]
    lib = ctypes.CDLL("libspandsp.so.2")
    for name in ("g722_encode_init", "g722_decode_init"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_void_p
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.g722_encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    lib.g722_decode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    with open(src, "rb") as f:
        data = f.read()
    if mode == "encode":
        state = lib.g722_encode_init(None, 64000, 0)
        n = len(data) // 2
        pcm = (ctypes.c_int16 * n).from_buffer_copy(data[: 2 * n])
        out = ctypes.create_string_buffer(n // 2 + 1)
        written = lib.g722_encode(state, out, pcm, n)
        result = out.raw[:written]
    else:
        state = lib.g722_decode_init(None, 64000, 0)
        out = (ctypes.c_int16 * (2 * len(data)))()
        written = lib.g722_decode(state, out, data, len(data))
        result = bytes(out)[: 2 * written]
    if not state:
        print("spandsp: init failed", file=sys.stderr)
        return 1
    with open(dst, "wb") as f:
        f.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
