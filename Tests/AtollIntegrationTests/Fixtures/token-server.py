#!/usr/bin/env python3
"""A registry token service for tests: what Docker Hub's auth.docker.io does, small.

Registry 2.8 (Debian's docker-registry) is configured with `auth: token:` pointing here. This
server makes a P-256 key and a self-signed certificate (written to CERT for the registry's
rootcertbundle), then answers GET /token?service=S&scope=...: with valid basic credentials it
signs an ES256 JWT granting every scope asked for; anonymous or wrong credentials get 401.
Each request's scopes are appended, one line per request, to LOG.

Usage: token-server.py PORT CERT LOG USER:PASSWORD ISSUER
"""
import base64
import datetime
import http.server
import json
import sys
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

port, cert_path, log_path, user, issuer = sys.argv[1:6]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "atoll-test-token-signer")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(hours=1))
    .not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
with open(cert_path, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
chain = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(subject, service, scopes):
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) < 3:
            continue
        access.append({"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
    issued = int(time.time())
    header = {"typ": "JWT", "alg": "ES256", "x5c": chain}
    claims = {
        "iss": issuer, "sub": subject, "aud": service, "exp": issued + 300, "nbf": issued - 10,
        "iat": issued, "jti": str(uuid.uuid4()), "access": access,
    }
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        with open(log_path, "a") as f:
            f.write(" ".join(scopes) + "\n")
        expected = "Basic " + base64.b64encode(user.encode()).decode()
        if url.path != "/token" or self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"details":"wrong credentials"}')
            return
        signed = token(user.split(":")[0], query.get("service", [""])[0], scopes)
        body = json.dumps({"token": signed, "access_token": signed, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
