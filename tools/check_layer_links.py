#!/usr/bin/env python3
"""Checks that no layer library calls into a layer above it.

The include paths already stop a lower layer from including a higher layer's header
(Note [layers] in CMakeLists.txt), but a function declared low and defined high (as
Tensor's methods are) could still be called from below and link only by luck of the link
order. This reads each static library's symbols with `nm` and fails when a library leaves
undefined a project symbol (namespace mila) that only a library above it defines.

usage: check_layer_links.py BUILD_DIR LIB:DEP,DEP,... [LIB:DEP,...]
  each LIB is listed with every library below it (transitively), as CMakeLists.txt passes them.
"""
import subprocess
import sys
from pathlib import Path


def symbols(archive: Path, undefined: bool) -> set:
    args = ["nm", "-C", "-u" if undefined else "--defined-only", str(archive)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        if "mila::" not in line:
            continue
        if undefined:
            found.add(line.strip()[2:].strip() if line.strip().startswith("U ") else line.strip())
        else:
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] not in ("U", "w", "v"):
                found.add(parts[2])
    return found


def main() -> int:
    build = Path(sys.argv[1])
    below = {}
    for spec in sys.argv[2:]:
        lib, _, deps = spec.partition(":")
        below[lib] = [d for d in deps.split(",") if d]
    defined = {lib: symbols(build / f"lib{lib}.a", undefined=False) for lib in below}
    failures = 0
    for lib, deps in below.items():
        allowed = set(defined[lib]).union(*(defined[d] for d in deps if d in defined))
        for sym in sorted(symbols(build / f"lib{lib}.a", undefined=True) - allowed):
            owners = [other for other in below if sym in defined[other]]
            if owners:  # defined in this build, but only above: an upward call
                print(f"{lib} calls {sym}, defined in {', '.join(owners)}, which is not below it")
                failures += 1
    checked = ", ".join(below)
    print(f"{failures} upward calls among {checked}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
