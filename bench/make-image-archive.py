#!/usr/bin/env python3
"""Writes a docker-save archive of a synthetic multi-layer image for benchmarks.

Layers: the busybox rootfs, then N layers of many small files (source-tree-like: 1-16 KiB each)
plus a few larger files, about SIZE_MB in all. Deterministic (seeded), so every run is the same.
Usage: make-image-archive.py OUTPUT.tar [--layers 5] [--size-mb 100] [--name bench:latest] [--gzip]
"""
import argparse, gzip, hashlib, io, json, os, random, tarfile, subprocess, tempfile

def layer_bytes(files, compress):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path, data in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE; info.mode = 0o755; info.mtime = 1700000000
                    tar.addfile(info)
            info = tarfile.TarInfo(path); info.size = len(data); info.mode = 0o644; info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    diff_id = hashlib.sha256(raw).hexdigest()
    blob = gzip.compress(raw, 6, mtime=0) if compress else raw
    return raw, blob, diff_id

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("output"); ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--size-mb", type=int, default=100); ap.add_argument("--name", default="bench:latest")
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()
    rng = random.Random(42)
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([os.path.join(here, "..", "deploy", "busybox-image"), os.path.join(tmp, "bb.tar")], check=True,
                       stdout=subprocess.DEVNULL)
        with tarfile.open(os.path.join(tmp, "bb.tar")) as bb:
            manifest = json.load(bb.extractfile("./manifest.json"))
            base_layer = bb.extractfile("./" + manifest[0]["Layers"][0]).read()
    layers = [(base_layer, gzip.compress(base_layer, 6, mtime=0) if args.gzip else base_layer,
               hashlib.sha256(base_layer).hexdigest())]
    per_layer = args.size_mb * 1_000_000 // (args.layers - 1)
    for n in range(1, args.layers):
        files, total, i = [], 0, 0
        # A few large files, then many small ones.
        for _ in range(3):
            size = per_layer // 10
            files.append((f"opt/layer{n}/big{_}.bin", rng.randbytes(size))); total += size
        while total < per_layer:
            size = rng.randint(1024, 16384)
            files.append((f"usr/share/layer{n}/d{i // 100}/f{i}.txt", rng.randbytes(size // 2) * 2)); total += size; i += 1
        layers.append(layer_bytes(files, args.gzip))
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for _, _, d in layers]},
              "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))]}
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_id = hashlib.sha256(config_bytes).hexdigest()
    with tarfile.open(args.output, "w", format=tarfile.PAX_FORMAT) as out:
        def add(name, data):
            info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o644; info.mtime = 1700000000
            out.addfile(info, io.BytesIO(data))
        paths = []
        for raw, blob, diff_id in layers:
            digest = hashlib.sha256(blob).hexdigest()
            add(f"blobs/sha256/{digest}", blob); paths.append(f"blobs/sha256/{digest}")
        add(f"blobs/sha256/{config_id}", config_bytes)
        add("manifest.json", json.dumps([{"Config": f"blobs/sha256/{config_id}", "RepoTags": [args.name], "Layers": paths}]).encode())
    total = sum(len(raw) for raw, _, _ in layers)
    print(f"{args.output}: {len(layers)} layers, {total / 1e6:.1f} MB uncompressed")

if __name__ == "__main__":
    main()
