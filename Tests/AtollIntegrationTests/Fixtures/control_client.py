#!/usr/bin/env python3
"""A cluster Control client in Python, generated from Atoll's proto/ by grpcio-tools.

Usage: control_client.py PROTO_DIR ADDRESS TLS_DIR [--cert CERT --key KEY]

Generates stubs from PROTO_DIR/atoll/cluster/v1/cluster.proto with grpcio-tools' own protoc,
connects to ADDRESS (IP:PORT) with mutual TLS (TLS_DIR's ca.pem, cert.pem and key.pem; --cert and
--key override the client certificate), calls Control.ClusterInfo and Control.ListNodes and
prints {"cluster_id": ..., "nodes": [{"id", "hostname", "role", "state"}, ...]} as JSON.
Exits 3 with `RPC_ERROR <code> <details>` on stderr when a call fails.
"""
import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile

import grpc

PROTO = "atoll/cluster/v1/cluster.proto"


def generate(proto_dir, out_dir):
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", os.path.join(proto_dir, PROTO)],
        check=True)
    sys.path.insert(0, out_dir)
    return (importlib.import_module("atoll.cluster.v1.cluster_pb2"),
            importlib.import_module("atoll.cluster.v1.cluster_pb2_grpc"))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("proto_dir")
    parser.add_argument("address")
    parser.add_argument("tls_dir")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(os.path.join(args.tls_dir, "ca.pem")),
        private_key=read(args.key or os.path.join(args.tls_dir, "key.pem")),
        certificate_chain=read(args.cert or os.path.join(args.tls_dir, "cert.pem")))

    with tempfile.TemporaryDirectory() as out_dir:
        pb2, pb2_grpc = generate(args.proto_dir, out_dir)
        with grpc.secure_channel(args.address, credentials) as channel:
            control = pb2_grpc.ControlStub(channel)
            try:
                info = control.ClusterInfo(pb2.ClusterInfoRequest(), timeout=10)
                listed = control.ListNodes(pb2.ListNodesRequest(), timeout=10)
            except grpc.RpcError as error:
                print(f"RPC_ERROR {error.code().name} {error.details()}", file=sys.stderr)
                return 3

    nodes = [{"id": n.id, "hostname": n.description.hostname, "role": n.role, "state": n.state}
             for n in listed.nodes]
    print(json.dumps({"cluster_id": info.cluster_id, "nodes": nodes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
