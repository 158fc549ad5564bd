#!/usr/bin/env python3
"""Copy kernel sources into an emulator build folder, rewritten for plain C++.

usage: prep.py OUTDIR kernels/a.cu kernels/b.cuh ...

kernel<<<grid, block, smem, stream>>>(args);  becomes
lg_emu_launch((const void *) kernel, grid, block, smem, stream, lg_emu_bind(kernel, args));
(the arguments converted to the kernel's parameter types at the launch, as
CUDA copies them: a graph replays those values, not the expressions)
and `extern __shared__ T name[];` a pointer to the launch's dynamic shared
memory.  The real gpu_compat.cuh is not copied: tests/gpu_emu's stands in.
"""
import os
import re
import sys

LAUNCH = re.compile(r'([A-Za-z_][\w:]*(?:<[^<>;]*>)?)\s*<<<(.*?)>>>\s*\((.*?)\);', re.S)
DYN = re.compile(r'extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;')


def launch(m):
    kern, cfg, args = m.group(1), m.group(2), m.group(3)
    parts, depth, cur = [], 0, ''
    for ch in cfg:
        if ch == ',' and depth == 0:
            parts.append(cur.strip())
            cur = ''
            continue
        depth += ch in '(<[' and 1 or ch in ')>]' and -1 or 0
        cur += ch
    parts.append(cur.strip())
    while len(parts) < 4:
        parts.append('0' if len(parts) == 2 else '(cudaStream_t) 0')
    args = args.strip()
    return ('lg_emu_launch((const void *) %s, %s, lg_emu_bind(%s%s));'
            % (kern, ', '.join(parts), kern, ', ' + args if args else ''))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for src in sys.argv[2:]:
        if os.path.basename(src) == 'gpu_compat.cuh':
            continue
        text = open(src, encoding='utf-8').read()
        text = LAUNCH.sub(launch, text)
        text = DYN.sub(r'\1 *\2 = (\1 *) lg_emu_dyn_smem;', text)
        if '<<<' in text:
            sys.exit('prep.py: a launch in %s was not rewritten' % src)
        with open(os.path.join(out, os.path.basename(src)), 'w', encoding='utf-8') as f:
            f.write(text)


if __name__ == '__main__':
    main()
