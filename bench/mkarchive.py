#!/usr/bin/env python3
"""Wrap a rootfs tarball as a one-layer docker-archive (`docker save` format).

usage: mkarchive.py ROOTFS.tar OUT.tar NAME:TAG
"""
import hashlib
import io
import json
import sys
import tarfile


def main():
    rootfs, out, name = sys.argv[1:4]
    layer = open(rootfs, "rb").read()
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_hex]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench/mkarchive.py"}],
    }).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{
        "Config": config_hex + ".json",
        "RepoTags": [name],
        "Layers": [layer_hex + "/layer.tar"],
    }]).encode()
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tf:
        for path, data in [
            (config_hex + ".json", config),
            (layer_hex + "/layer.tar", layer),
            ("manifest.json", manifest),
        ]:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
