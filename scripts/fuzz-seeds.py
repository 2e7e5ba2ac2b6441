#!/usr/bin/env python3
import os, json, io, tarfile, gzip, base64, struct, hashlib
from cryptography.hazmat.primitives.asymmetric import ec, rsa, ed25519, padding
from cryptography.hazmat.primitives import serialization, hashes
# Writes the seed corpus of every fuzz target into fuzz/corpus/ (fresh keys each run), from the
# repository's own test data and keys made here with PyPI's cryptography.
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, "fuzz/corpus")
def put(target, name, data):
    d = os.path.join(out, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), "wb").write(data)

# dsse_envelope
put("dsse_envelope", "spec-example.json", open(f"{root}/tests/data/dsse/spec-example/envelope.json","rb").read())
bundle = json.load(open(f"{root}/tests/data/dsse/sigstore-go/bundle-public-key.json"))
env = bundle.get("dsseEnvelope")
if env:
    put("dsse_envelope", "sigstore.json", json.dumps({"payloadType": env["payloadType"], "payload": env["payload"], "signatures": [{"keyid": s.get("keyid",""), "sig": s["sig"]} for s in env["signatures"]]}))
put("dsse_envelope", "two-sigs.json", json.dumps({"payloadType":"application/vnd.in-toto+json","payload":base64.b64encode(b'{"_type":"x"}').decode(),"signatures":[{"keyid":"a","sig":"MEUCIQ=="},{"sig":"AAAA"}]}))
put("dsse_envelope", "empty.json", '{"payloadType":"","payload":"","signatures":[]}')

# tar_archive
def tarball(fmt, files, gz=True):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in files:
            if data is None:
                ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
            else:
                ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 0; t.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw
k = ec.generate_private_key(ec.SECP256R1())
pub_pem = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
files = [("public-keys", None), ("public-keys/a.pub", pub_pem), ("trust-anchors.json", b'{"version":"1.0"}'), ("metadata/bundle-manifest.json", b'{}')]
put("tar_archive", "ustar.tar.gz", tarball(tarfile.USTAR_FORMAT, files))
put("tar_archive", "ustar.tar", tarball(tarfile.USTAR_FORMAT, files, gz=False))
put("tar_archive", "pax.tar", tarball(tarfile.PAX_FORMAT, [("public-keys/" + "p" * 120 + ".pub", pub_pem)], gz=False))
put("tar_archive", "gnu-longname.tar", tarball(tarfile.GNU_FORMAT, [("public-keys/" + "g" * 140 + ".pub", pub_pem)], gz=False))
put("tar_archive", "dotdot.tar", tarball(tarfile.USTAR_FORMAT, [("../escape", b"x")], gz=False))

# config_text
put("config_text", "cryptohost.toml", open(f"{root}/cryptohost.toml","rb").read())
put("config_text", "softhsm.toml", open(f"{root}/examples/softhsm.toml","rb").read())
put("config_text", "service-and-kit.toml", '''component_dir = "components"
[trust]
bootstrap_fingerprint = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
[kit]
dir = "kit"
state = "kit.state.json"
disable = ["simulation"]
priority = { offline-verification = 150 }
[service]
socket = "/run/cryptohost/s.sock"
max_concurrent = 8
[[service.allow]]
users = ["ci", "1001"]
operations = ["sign"]
keys = ["sim:demo-*"]
[[profile]]
name = "release"
key = "pkcs11:token=t;object=k"
algorithm = "ES256"
[limits]
memory_mib = 64
[dsse]
max_payload_mib = 4
''')

# key_reference
for i, ref in enumerate(["pkcs11:token=cryptohost-dev;object=org-es256", "pkcs11:token=a%20b;id=%01%02?pin-value=123456",
        "pkcs11:object=x;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so", "sim:demo-key", "file:keys/a.pem",
        "./key.pem", "pkcs11:", "pkcs11:token=%zz", "PKCS11:Token=X;OBJECT=y"]):
    put("key_reference", f"ref-{i}", ref)

# key_encoding
r = rsa.generate_private_key(65537, 2048)
e = ed25519.Ed25519PrivateKey.generate()
for name, key in [("ec", k), ("rsa", r), ("ed25519", e)]:
    put("key_encoding", f"{name}-pub.pem", key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    put("key_encoding", f"{name}-pub.der", key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    put("key_encoding", f"{name}-p8.pem", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
put("key_encoding", "ec-legacy.pem", k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
sig = k.sign(b"msg", ec.ECDSA(hashes.SHA256()))
put("key_encoding", "sig.b64", base64.b64encode(sig) + b"\n")

# request_body: byte 0 picks the route (order of ROUTES)
spki_pem = pub_pem.decode()
bodies = [
  (0, {"algorithm":"ES256","public_key":spki_pem,"signature":base64.b64encode(sig).decode(),"data":base64.b64encode(b"msg").decode()}),
  (0, {"algorithm":"ES256","public_key":base64.b64encode(k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode(),"signature":"AAAA","digest":hashlib.sha256(b"msg").hexdigest(),"signature_format":"p1363"}),
  (1, {"envelope": json.load(open(f"{root}/tests/data/dsse/spec-example/envelope.json")), "public_keys":[{"public_key": open(f"{root}/tests/data/dsse/spec-example/public-key.pem").read()}], "threshold":1}),
  (2, {"key":"sim:demo","algorithm":"ES256","data":"aGVsbG8="}),
  (3, {"payload_type":"text/plain","payload":"aGVsbG8=","keys":[{"key":"sim:a","algorithm":"ES256"}]}),
  (4, {"key":"sim:demo","algorithm":"ES256"}),
  (5, {"key":"sim:new","algorithm":"RS256","rsa_bits":2048}),
  (6, {"key":"sim:aes","plaintext":"aGVsbG8=","aad":"YQ=="}),
  (7, {"key":"sim:aes","nonce":"AAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}),
]
for i, (route, body) in enumerate(bodies):
    put("request_body", f"body-{i}", bytes([route]) + json.dumps(body).encode())
put("request_body", "not-json", bytes([0]) + b"{\"algorithm\":")

# http_response
for i, resp in enumerate([b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n{\"error\":{\"kind\":\"not-found\",\"message\":\"x\"}}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"]):
    put("http_response", f"resp-{i}", resp)

# guest_boundary: [pick, op, len16, key, len16, sig, msg]; pick 0 = ES256 / SHA-256.
def gb(pick, op, key, sig, msg):
    return bytes([pick, op]) + struct.pack(">H", len(key)) + key + struct.pack(">H", len(sig)) + sig + msg
spki = k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
p8 = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
rspki = r.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
rsig = r.sign(b"msg", padding.PKCS1v15(), hashes.SHA256())
put("guest_boundary", "es256-verify", gb(0, 1, spki, sig, b"msg"))
put("guest_boundary", "es256-verifier", gb(0, 2, spki, sig, b"msg"))
put("guest_boundary", "rs256-verify", gb(3, 1, rspki, rsig, b"msg"))
put("guest_boundary", "es256-sign", gb(0, 3, p8, b"", b"msg"))
put("guest_boundary", "digest", gb(0, 0, b"", b"", b"abc"))
put("guest_boundary", "aes-open", gb(0, 4, bytes(32), bytes(28), b"aad"))
put("guest_boundary", "ed25519", gb(9, 1, e.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo), e.sign(b"msg"), b"msg"))
