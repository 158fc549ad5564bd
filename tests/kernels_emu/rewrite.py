#!/usr/bin/env python3
"""rewrite.py SRC DST — make a kernels/*.cu file plain C++ for cuda_emu.h:
kernel<<<grid, block, shmem, stream>>>(args); becomes
lg_emu_launch(kernel, grid, block, shmem, stream, args); and
extern __shared__ T name[]; becomes a pointer into lg_emu_dyn_shmem."""
import re
import sys

src = open(sys.argv[1]).read()
n_launch = 0


def launch(m):
    global n_launch
    n_launch += 1
    return "lg_emu_launch(%s, %s, %s);" % (m.group(1), m.group(2), m.group(3))


out = re.sub(r"([A-Za-z_]\w*(?:<[^<>;()]*>)?)<<<(.*?)>>>\((.*?)\);", launch, src, flags=re.S)
out = re.sub(r"extern\s+__shared__\s+(\w+)\s+(\w+)\[\];",
             r"\1 *\2 = (\1 *) lg_emu_dyn_shmem;", out)
if "<<<" in out:
    sys.exit("rewrite.py: a launch was not rewritten in " + sys.argv[1])
with open(sys.argv[2], "w") as f:
    f.write('#include "cuda_emu.h"\n#line 1 "%s"\n' % sys.argv[1])
    f.write(out)
