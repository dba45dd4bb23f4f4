"""Makes the four Linux platforms' wheels from one wheel built here: the same package with
each platform's engine library (``bindings/c/platforms.sh`` builds and checks them, the
jar carries the same files) in place of the host's, tagged for the platform, its RECORD
rewritten. The package is pure Python over the C API (ctypes), so only the library and
the tags differ.

Usage: platform_wheels.py HOST_WHEEL PLATFORMS_DIR OUT_DIR
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

# Platform directory -> the wheel's platform tags (manylinux2014 is glibc 2.17; both
# spellings, as auditwheel writes them, so old and new pips take it).
TAGS = {
    "linux-x86_64": "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "linux-aarch64": "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "linux-x86_64-musl": "musllinux_1_2_x86_64",
    "linux-aarch64-musl": "musllinux_1_2_aarch64",
}
LIBRARY = "lic4es/_native/lib_native.so"


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(host: Path, library: Path, tags: str, out_dir: Path) -> Path:
    with zipfile.ZipFile(host) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    dist_info = next(n.split("/")[0] for n in files if n.endswith(".dist-info/WHEEL"))
    name, version = dist_info[: -len(".dist-info")].split("-")
    files[LIBRARY] = library.read_bytes()
    wheel = [line for line in files[f"{dist_info}/WHEEL"].decode().splitlines()
             if not line.startswith("Tag:")]
    wheel += [f"Tag: py3-none-{tag}" for tag in tags.split(".")]
    files[f"{dist_info}/WHEEL"] = ("\n".join(wheel) + "\n").encode()
    record = f"{dist_info}/RECORD"
    files[record] = ("\n".join(
        [record_line(n, d) for n, d in files.items() if n != record] + [f"{record},,"]
    ) + "\n").encode()
    out = out_dir / f"{name}-{version}-py3-none-{tags}.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        # RECORD last, as the wheel format asks.
        for n in sorted(files, key=lambda n: n == record):
            info = zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if n == LIBRARY else 0o644) << 16
            z.writestr(info, files[n], zipfile.ZIP_DEFLATED)
    return out


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    host, platforms, out_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    out_dir.mkdir(parents=True, exist_ok=True)
    for platform, tags in TAGS.items():
        library = platforms / platform / "liblic4es.so"
        if not library.is_file():
            sys.exit(f"{library} is not built (bindings/c/platforms.sh)")
        print(repack(host, library, tags, out_dir))


if __name__ == "__main__":
    main()
