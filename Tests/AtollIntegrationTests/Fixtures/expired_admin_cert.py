#!/usr/bin/env python3
"""Writes an admin bundle whose certificate the cluster's own CA signed but which expired a day
ago, read from a manager's store (the CA key is only there), to test that it is refused.

Usage: expired_admin_cert.py CLUSTER_DB OUT_DIR
"""
import datetime
import json
import os
import sqlite3
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

database, out = sys.argv[1:3]
row = json.loads(sqlite3.connect(database).execute("SELECT data FROM cluster").fetchone()[0])
ca_key = serialization.load_pem_private_key(row["caKeyPEM"].encode(), None)
ca = x509.load_pem_x509_certificate(row["caCertificatePEM"].encode())
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
subject = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, row["id"]),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "atoll-admin"),
    x509.NameAttribute(NameOID.COMMON_NAME, "admin-expired"),
])
certificate = (
    x509.CertificateBuilder()
    .subject_name(subject)
    .issuer_name(ca.subject)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=2))
    .not_valid_after(now - datetime.timedelta(days=1))
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    .sign(ca_key, hashes.SHA256())
)
os.makedirs(out, mode=0o700, exist_ok=True)
with open(os.path.join(out, "ca.pem"), "wb") as f:
    f.write(ca.public_bytes(serialization.Encoding.PEM))
with open(os.path.join(out, "cert.pem"), "wb") as f:
    f.write(certificate.public_bytes(serialization.Encoding.PEM))
with open(os.path.join(out, "key.pem"), "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
