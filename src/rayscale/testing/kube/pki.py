"""A throwaway PKI for the test control plane: one CA, a loopback serving cert, an admin
client cert (group ``system:masters``, so RBAC never gets in the way) and a service-account key.
For the process kubelet's log endpoint (``kubectl logs``): a kubelet serving cert for the
loopback address and the client cert kube-apiserver presents to kubelets.

Certificates live a week: long enough for any test session, useless afterwards.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER = "rayscale-admin"
ADMIN_GROUP = "system:masters"  # bypasses RBAC authorization entirely
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"  # what kube-apiserver is to kubelets
LOOPBACK = "127.0.0.1"  # the only address the serving cert is valid for, besides names


@dataclass(frozen=True)
class Pki:
    """Files of the throwaway PKI: one CA signs the serving cert and the admin client cert."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path
    kubelet_cert: Path  # the process kubelet's HTTPS serving cert (127.0.0.1, localhost)
    kubelet_key: Path
    kubelet_client_cert: Path  # kube-apiserver -> kubelet client cert
    kubelet_client_key: Path


def write_private(path: Path, data: bytes) -> Path:
    """Write a file only its owner can read (keys, and kubeconfigs that embed them)."""
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def write_pki(directory: Path) -> Pki:
    """Generate the CA, serving certs (apiserver, kubelet), client certs (admin, apiserver->kubelet)
    and a service-account key."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("rayscale-test-ca")
    ca = _issue(
        ca_name,
        ca_key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        ],
    )
    serving_key, serving = _server_cert(
        "kube-apiserver", ca_name, ca_key, ["kubernetes.default.svc"]
    )
    kubelet_key, kubelet = _server_cert("process-kubelet", ca_name, ca_key, [])
    admin_key, admin = _client_cert(ADMIN_USER, ADMIN_GROUP, ca_name, ca_key)
    kl_client_key, kl_client = _client_cert(KUBELET_CLIENT_USER, ADMIN_GROUP, ca_name, ca_key)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = serialization.Encoding.PEM
    return Pki(
        ca_cert=write_private(directory / "ca.crt", ca.public_bytes(pem)),
        serving_cert=write_private(directory / "apiserver.crt", serving.public_bytes(pem)),
        serving_key=write_private(directory / "apiserver.key", _pem_key(serving_key)),
        admin_cert=write_private(directory / "admin.crt", admin.public_bytes(pem)),
        admin_key=write_private(directory / "admin.key", _pem_key(admin_key)),
        service_account_key=write_private(directory / "sa.key", _pem_key(sa_key)),
        service_account_pub=write_private(directory / "sa.pub", sa_pub),
        kubelet_cert=write_private(directory / "kubelet.crt", kubelet.public_bytes(pem)),
        kubelet_key=write_private(directory / "kubelet.key", _pem_key(kubelet_key)),
        kubelet_client_cert=write_private(
            directory / "apiserver-kubelet-client.crt", kl_client.public_bytes(pem)
        ),
        kubelet_client_key=write_private(
            directory / "apiserver-kubelet-client.key", _pem_key(kl_client_key)
        ),
    )


_LEAF_USAGE = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
Key = ec.EllipticCurvePrivateKey


def _server_cert(
    name: str, ca_name: x509.Name, ca_key: Key, dns: list[str]
) -> tuple[Key, x509.Certificate]:
    """A serving cert for ``localhost``, ``dns`` names and the loopback address."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in ["localhost", *dns]]
    sans.append(x509.IPAddress(ipaddress.ip_address(LOOPBACK)))
    cert = _issue(
        _name(name),
        key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_LEAF_USAGE, True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName(sans), False),
        ],
    )
    return key, cert


def _client_cert(
    user: str, group: str, ca_name: x509.Name, ca_key: Key
) -> tuple[Key, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(
        _name(user, group),
        key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_LEAF_USAGE, True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ],
    )
    return key, cert


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())
