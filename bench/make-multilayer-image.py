#!/usr/bin/env python3
"""Writes a docker-save archive of a multi-layer image of incompressible data for registry benchmarks.

Layers: the busybox rootfs from BASE.tar (what `deploy/busybox-image` writes), then N layers of a few
files of random bytes each, about SIZE_MB in all, so gzip cannot shrink what goes over the wire.
Layers are gzip-compressed in the archive. Deterministic (seeded): every run writes the same image.
Usage: make-multilayer-image.py BASE.tar OUTPUT.tar [--layers 6] [--size-mb 100] [--name bench/big:1]
"""
import argparse, gzip, hashlib, io, json, random, tarfile

MTIME = 1700000000

def layer_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path, data in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE; info.mode = 0o755; info.mtime = MTIME
                    tar.addfile(info)
            info = tarfile.TarInfo(path); info.size = len(data); info.mode = 0o644; info.mtime = MTIME
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base"); ap.add_argument("output")
    ap.add_argument("--layers", type=int, default=6, help="random layers on top of busybox")
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--name", default="bench/big:1")
    args = ap.parse_args()
    rng = random.Random(6)
    with tarfile.open(args.base) as bb:
        manifest = json.load(bb.extractfile("./manifest.json"))
        raws = [bb.extractfile("./" + manifest[0]["Layers"][0]).read()]
    per_layer = args.size_mb * 1_000_000 // args.layers
    for n in range(1, args.layers + 1):
        # Four files a layer, one large and three smaller, all random.
        sizes = [per_layer // 2, per_layer // 4, per_layer // 8]
        sizes.append(per_layer - sum(sizes))
        raws.append(layer_tar([(f"opt/big{n}/blob{i}.bin", rng.randbytes(s)) for i, s in enumerate(sizes)]))
    diff_ids = [hashlib.sha256(raw).hexdigest() for raw in raws]
    # Level 1: random data does not compress at any level, so spend as little time as possible.
    blobs = [gzip.compress(raw, 1, mtime=0) for raw in raws]
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
              "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"bench layer {i}"} for i in range(len(raws))]}
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_id = hashlib.sha256(config_bytes).hexdigest()
    with tarfile.open(args.output, "w", format=tarfile.PAX_FORMAT) as out:
        def add(name, data):
            info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o644; info.mtime = MTIME
            out.addfile(info, io.BytesIO(data))
        paths = []
        for blob in blobs:
            path = f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"
            add(path, blob); paths.append(path)
        add(f"blobs/sha256/{config_id}", config_bytes)
        add("manifest.json", json.dumps([{"Config": f"blobs/sha256/{config_id}", "RepoTags": [args.name],
                                          "Layers": paths}]).encode())
    print(f"{args.output}: {len(raws)} layers, {sum(map(len, raws)) / 1e6:.1f} MB uncompressed, "
          f"{sum(map(len, blobs)) / 1e6:.1f} MB gzip")

if __name__ == "__main__":
    main()
