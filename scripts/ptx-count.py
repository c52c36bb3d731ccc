#!/usr/bin/env python3
"""Counts the PTX instructions NVRTC emits for one field multiplication, without a GPU.

    LD_LIBRARY_PATH=~/.cache/dualchain-nvrtc/nvidia/cu13/lib \
        python3 scripts/ptx-count.py [--field fp|fr] [--arch compute_90] [DIR]

DIR is a copy of kernels/cuda (default: this checkout's), so two versions of the
arithmetic can be compared, for example one taken out with `git archive`. The kernel
loads one pair per thread into locals and multiplies them through `mul_inline`, so the
count is the multiplication's own code plus the loads and stores. It is a static count: what it says about speed holds only as far as instruction
count predicts the device's time, which only a device can confirm.
"""
import argparse
import ctypes
import os
import re
import sys
from collections import Counter


def expand(path, seen, out):
    path = os.path.normpath(path)
    if path in seen:
        return
    seen.add(path)
    for line in open(path):
        s = line.strip()
        if s == "#pragma once":
            continue
        m = re.match(r'#include "(.*)"', s)
        if m:
            expand(os.path.join(os.path.dirname(path), m.group(1)), seen, out)
            continue
        out.append(line)


def ptx(source, arch):
    lib = ctypes.CDLL("libnvrtc.so.13")
    prog = ctypes.c_void_p()
    check = lambda rc, what: rc == 0 or sys.exit(f"{what} failed: {rc}")
    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"count.cu", 0, None, None), "create")
    opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17", b"-default-device"]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
    if rc != 0:
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        sys.exit(log.value.decode())
    size = ctypes.c_size_t()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    buf = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, buf)
    return buf.value.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "kernels", "cuda"))
    ap.add_argument("--field", choices=["fp", "fr"], default="fp")
    ap.add_argument("--arch", default="compute_90")
    a = ap.parse_args()
    lines = []
    expand(os.path.join(a.dir, "ff", "field.cuh"), set(), lines)
    ty = "Fp" if a.field == "fp" else "Fr"
    lines.append(
        f'extern "C" __global__ void count_mul(const {ty}* x, const {ty}* y, {ty}* r) {{\n'
        f"  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;\n"
        f"  {ty} a = x[i], b = y[i];\n"
        f"  r[i] = {ty}::mul_inline(a, b);\n}}\n"
    )
    text = ptx("".join(lines), a.arch)
    body = text[text.index("count_mul(") :]
    ops = Counter()
    for line in body.splitlines():
        s = line.strip()
        if s.startswith("@"):  # a predicated instruction: drop the predicate
            s = s.split(None, 1)[1]
        # Skip blank lines, comments, directives, braces and labels.
        if not s or s.startswith(("//", ".", "{", "}")) or s.endswith(":"):
            continue
        ops[s.split()[0].rstrip(";")] += 1
    total = sum(ops.values())
    print(f"{ty} mul_inline, {a.arch}: {total} PTX instructions")
    for op, n in ops.most_common(12):
        print(f"  {n:5d} {op}")


if __name__ == "__main__":
    main()
