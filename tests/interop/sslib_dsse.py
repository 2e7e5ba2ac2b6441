#!/usr/bin/env python3
"""DSSE interop with Python's securesystemslib (the in-toto reference stack).

  sslib_dsse.py verify ENVELOPE PUBLIC.pem SCHEME      exit 0 valid, 1 invalid
  sslib_dsse.py sign PAYLOAD TYPE PRIVATE.pem SCHEME OUT

SCHEME is a securesystemslib scheme: ecdsa-sha2-nistp256 or rsassa-pss-sha256. Needs
securesystemslib >= 1.0 (its dsse module); `just setup` installs it from PyPI.
"""
import json
import sys

KEYTYPE = {"ecdsa-sha2-nistp256": "ecdsa", "rsassa-pss-sha256": "rsa"}


def key_for(pem: str, scheme: str, keyid: str = "k"):
    from securesystemslib.signer import SSlibKey
    return SSlibKey(keyid, KEYTYPE[scheme], scheme, {"public": pem.strip()})


def verify(env_path, pub_path, scheme):
    env = json.load(open(env_path))
    pem = open(pub_path).read()
    from securesystemslib.dsse import Envelope
    # securesystemslib matches a signature to a key by keyid (the hint is all it has): offer
    # the key under each keyid the envelope names.
    for keyid in [s.get("keyid") or "k" for s in env["signatures"]]:
        try:
            Envelope.from_dict(env).verify([key_for(pem, scheme, keyid)], 1)
            return 0
        except Exception as e:  # VerificationError and friends
            print(f"invalid: {e}", file=sys.stderr)
    return 1


def sign(payload_path, payload_type, priv_path, scheme, out):
    payload = open(payload_path, "rb").read()
    priv_pem = open(priv_path, "rb").read()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner
    signer = CryptoSigner(load_pem_private_key(priv_pem, None))
    env = Envelope(payload=payload, payload_type=payload_type, signatures={})
    env.sign(signer)
    doc = env.to_dict()
    json.dump(doc, open(out, "w"))
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    sys.exit(verify(*sys.argv[2:5]) if cmd == "verify" else sign(*sys.argv[2:7]))
