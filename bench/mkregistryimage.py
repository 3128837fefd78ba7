#!/usr/bin/env python3
"""Push a multi-layer image straight to a registry over plain HTTP (no client needed).

usage: mkregistryimage.py http://127.0.0.1:PORT REPO TAG LAYER.tar [LAYER.tar...]
Each layer tar is gzipped (level 6, as docker does) and uploaded; then the config and a
Docker schema2 manifest. Prints the manifest digest.
"""
import gzip
import hashlib
import json
import sys
import urllib.request


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as resp:
        return resp.status, resp.headers, resp.read()


def upload(base, repo, blob):
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    try:
        request("HEAD", f"{base}/v2/{repo}/blobs/{digest}")
        return digest
    except urllib.error.HTTPError:
        pass
    _, headers, _ = request("POST", f"{base}/v2/{repo}/blobs/uploads/", data=b"")
    loc = headers["Location"]
    if loc.startswith("/"):
        loc = base + loc
    sep = "&" if "?" in loc else "?"
    request("PUT", f"{loc}{sep}digest={digest}", data=blob,
            headers={"Content-Type": "application/octet-stream"})
    return digest


def main():
    base, repo, tag, *layers = sys.argv[1:]
    descs, diff_ids = [], []
    for path in layers:
        raw = open(path, "rb").read()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        descs.append({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": len(gz),
            "digest": upload(base, repo, gz),
        })
        del raw, gz
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/bash"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": upload(base, repo, config)},
        "layers": descs,
    }).encode()
    request("PUT", f"{base}/v2/{repo}/manifests/{tag}", data=manifest,
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
    total = sum(d["size"] for d in descs) + len(config)
    print("sha256:" + hashlib.sha256(manifest).hexdigest(), total)


if __name__ == "__main__":
    main()
