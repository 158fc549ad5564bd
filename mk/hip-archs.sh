#!/bin/sh
# mk/hip-archs.sh HIPCC OUTDIR ARCH... — which of the asked-for AMD GPU
# architectures this hipcc can build, as compiler flags on stdout.
#
# Debian 12's hipcc is clang 15 with ROCm 5.2's device libraries, and two of
# our targets do not fit it as packaged:
#   - gfx942 (MI300X) is not a target clang 15 knows.  gfx940 code objects
#     do not load on gfx942 devices (the runtime wants the exact ISA), so
#     building gfx940 instead would only look like support: it is skipped,
#     with a message.
#   - gfx1100 (RDNA3) is known to clang 15, but rocm-device-libs 5.2 has no
#     oclc_isa_version_1100.bc.  That bitcode only defines the constant
#     __oclc_ISA_version (11000 for gfx1100), so it is generated from the
#     gfx1030 one, in OUTDIR/bitcode next to links to the packaged files,
#     and --rocm-device-lib-path points there.
# Each architecture is tried once; the verdict is kept in OUTDIR/archs/ARCH
# ("ok", or "skip: why"), and messages go to stderr.
set -u

HIPCC=$1
OUT=$2
shift 2
mkdir -p "$OUT/archs"
probe="$OUT/archs/probe.cu"
printf '#include <hip/hip_runtime.h>\n__global__ void lg_probe(float *p) { p[threadIdx.x] = 1.0f; }\n' >"$probe"
# the same without device-library calls, to ask only whether clang knows the target
bare="$OUT/archs/bare.cu"
printf '#include <hip/hip_runtime.h>\n__global__ void lg_probe(float *p) { *p = 1.0f; }\n' >"$bare"

# the packaged device libraries: hipcc's own idea, else Debian's path
SYSBC=""
for d in /usr/lib/x86_64-linux-gnu/amdgcn/bitcode /usr/lib/amdgcn/bitcode /opt/rocm/amdgcn/bitcode; do
	[ -f "$d/ockl.bc" ] && { SYSBC=$d; break; }
done
BC="$OUT/bitcode"
use_bc=0

# Generate oclc_isa_version_NNNN.bc for gfxNNNN from the gfx1030 file.
make_isa_bc() {
	arch=$1
	n=${arch#gfx}
	case $n in
	[0-9][0-9][0-9][0-9]) ;;
	*) return 1 ;;
	esac
	# gfxMMms: major MM, minor m, stepping s -> MM*1000 + m*100 + s
	ver=$(( ${n%??} * 1000 + $(echo "$n" | cut -c3) * 100 + $(echo "$n" | cut -c4) ))
	[ -n "$SYSBC" ] && [ -f "$SYSBC/oclc_isa_version_1030.bc" ] || return 1
	command -v llvm-dis-15 >/dev/null && command -v llvm-as-15 >/dev/null || return 1
	mkdir -p "$BC"
	for f in "$SYSBC"/*.bc; do
		[ -e "$BC/$(basename "$f")" ] || ln -s "$f" "$BC/$(basename "$f")"
	done
	llvm-dis-15 "$SYSBC/oclc_isa_version_1030.bc" -o - |
		sed "s/constant i32 10300/constant i32 $ver/" |
		llvm-as-15 -o "$BC/oclc_isa_version_$n.bc" &&
		llvm-dis-15 "$BC/oclc_isa_version_$n.bc" -o - | grep -q "constant i32 $ver,"
}

for arch in "$@"; do
	verdict="$OUT/archs/$arch"
	# a verdict that relied on generated bitcode holds only while the bitcode is there
	if [ -f "$verdict" ] && [ "$(cat "$verdict")" = "ok bitcode" ] && [ ! -f "$BC/oclc_isa_version_${arch#gfx}.bc" ]; then
		rm -f "$verdict"
	fi
	if [ ! -f "$verdict" ]; then
		if ! "$HIPCC" --offload-arch="$arch" -nogpulib -c "$bare" -o "$OUT/archs/probe.o" 2>"$OUT/archs/$arch.log"; then
			why="the toolchain lacks $arch ($($HIPCC --version 2>/dev/null | grep -m1 -o 'clang version [0-9.]*') does not know it)"
			[ "$arch" = gfx942 ] && why="$why; gfx940 code objects do not load on gfx942 devices, so none is built in its place"
			echo "skip: $why" >"$verdict"
		elif "$HIPCC" --offload-arch="$arch" -c "$probe" -o "$OUT/archs/probe.o" 2>>"$OUT/archs/$arch.log"; then
			echo ok >"$verdict"
		elif grep -q "cannot find ROCm device library" "$OUT/archs/$arch.log" && make_isa_bc "$arch" &&
			"$HIPCC" --offload-arch="$arch" --rocm-device-lib-path="$BC" -c "$probe" -o "$OUT/archs/probe.o" 2>>"$OUT/archs/$arch.log"; then
			echo "ok bitcode" >"$verdict"
			echo "HIP: $arch: generated oclc_isa_version_${arch#gfx}.bc (the device libraries lack it) in $BC" >&2
		else
			echo "skip: $arch does not build with this toolchain (see $OUT/archs/$arch.log)" >"$verdict"
		fi
	fi
	case $(cat "$verdict") in
	ok) printf ' --offload-arch=%s' "$arch" ;;
	"ok bitcode") printf ' --offload-arch=%s' "$arch"; use_bc=1 ;;
	*) echo "HIP: skipping $arch: $(sed 's/^skip: //' "$verdict")" >&2 ;;
	esac
done
# every architecture then takes its libraries from the generated folder (links to the same files)
[ $use_bc = 1 ] && printf ' --rocm-device-lib-path=%s' "$BC"
rm -f "$OUT/archs/probe.o"
echo
