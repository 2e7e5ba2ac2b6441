#!/usr/bin/env python3
"""Cross-check tests/data/jose/rfc7520.json with pyca/cryptography.

Run from the repository root:  python3 tests/data/jose/check_rfc7520.py
Exits non-zero on any failure (including a missing `cryptography` package).

Checks:
  * every base64url value is unpadded, uses only the base64url alphabet and is
    canonical (no stray trailing bits);
  * the payload decodes to the text of RFC 7520 Figure 7;
  * the public JWKs are the private JWKs minus their private members, and the
    private keys are consistent with the public ones;
  * 4.1 / 4.2 / 4.3: compact, general and flattened serializations agree with
    each other and with protected_b64 / payload_b64, the protected header names
    the example's alg and the key's kid, and the RS256 / PS384 / ES512
    signature verifies in each form under the public key over
    ASCII(BASE64URL(protected) || '.' || payload_b64);
  * RS256 (deterministic) re-signs to the exact RFC signature;
  * 4.8: each signature's alg/kid sit where alg_in/kid_in say, RS256 and ES512
    verify, HS256 recomputes exactly;
  * a tampered payload fails every verification (so the checks are not vacuous).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
except ImportError:
    print("FAIL: pyca/cryptography is not installed (pip install cryptography)")
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "rfc7520.json")

# RFC 7520 Figure 7, with "\xe2\x80\x99" as U+2019.
EXPECTED_PAYLOAD = (
    "It\u2019s a dangerous business, Frodo, going out your "
    "door. You step onto the road, and if you don't keep your feet, "
    "there\u2019s no knowing where you might be swept off "
    "to."
).encode("utf-8")

B64URL = re.compile(r"^[A-Za-z0-9_-]*$")

failures = []
passes = 0


def check(cond, what):
    global passes
    if cond:
        passes += 1
    else:
        failures.append(what)
        print("FAIL:", what)


def b64d(s, what="value"):
    if not isinstance(s, str) or not B64URL.match(s) or len(s) % 4 == 1:
        failures.append("not unpadded base64url: %s" % what)
        print("FAIL: not unpadded base64url:", what)
        return b""
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if b64e(raw) != s:  # non-zero trailing bits: a different string, same bytes
        failures.append("non-canonical base64url: %s" % what)
        print("FAIL: non-canonical base64url:", what)
    return raw


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def uint(s, what):
    return int.from_bytes(b64d(s, what), "big")


def rsa_public(jwk):
    return rsa.RSAPublicNumbers(uint(jwk["e"], "e"), uint(jwk["n"], "n")).public_key()


def rsa_private(jwk):
    pub = rsa.RSAPublicNumbers(uint(jwk["e"], "e"), uint(jwk["n"], "n"))
    priv = rsa.RSAPrivateNumbers(
        p=uint(jwk["p"], "p"), q=uint(jwk["q"], "q"), d=uint(jwk["d"], "d"),
        dmp1=uint(jwk["dp"], "dp"), dmq1=uint(jwk["dq"], "dq"),
        iqmp=uint(jwk["qi"], "qi"), public_numbers=pub,
    )
    return priv.private_key()  # raises ValueError if inconsistent


def ec_public(jwk):
    assert jwk["crv"] == "P-521"
    x, y = b64d(jwk["x"], "x"), b64d(jwk["y"], "y")
    check(len(x) == 66 and len(y) == 66, "P-521 x/y are 66 octets")
    nums = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP521R1())
    return nums.public_key()  # raises ValueError if the point is not on the curve


def verify(alg, key, signing_input, sig):
    """True iff sig verifies; never raises for a bad signature."""
    try:
        if alg == "RS256":
            key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS384":
            key.verify(sig, signing_input,
                       padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
                       hashes.SHA384())
        elif alg == "ES512":
            if len(sig) != 132:
                return False
            r = int.from_bytes(sig[:66], "big")
            s = int.from_bytes(sig[66:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA512()))
        elif alg == "HS256":
            return hmac.compare_digest(hmac.new(key, signing_input, hashlib.sha256).digest(), sig)
        else:
            raise ValueError("unknown alg " + alg)
        return True
    except InvalidSignature:
        return False


def tamper(signing_input):
    # flip one payload character ('S' -> 'T') after the '.'
    i = signing_input.index(b".") + 1
    return signing_input[:i] + bytes([signing_input[i] ^ 0x07]) + signing_input[i + 1:]


def b64int(text):
    import base64 as _b
    return int.from_bytes(_b.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def main():
    with open(DATA, encoding="utf-8") as fh:
        data = json.load(fh)

    # ---- keys -------------------------------------------------------------
    k = data["keys"]
    check(k["ec_p521_public"] == {a: b for a, b in k["ec_p521_private"].items() if a != "d"},
          "ec_p521_public == ec_p521_private minus d")
    check(k["rsa_public"] == {a: k["rsa_private"][a] for a in ("kty", "kid", "use", "n", "e")},
          "rsa_public == rsa_private's kty/kid/use/n/e")
    check(list(k["rsa_public"]) == ["kty", "kid", "use", "n", "e"], "rsa_public members")
    check(len(b64d(k["rsa_public"]["n"], "n")) == 256, "RSA n is 256 octets")

    rsa_pub = rsa_public(k["rsa_public"])
    rsa_priv = rsa_private(k["rsa_private"])
    check(rsa_priv.public_key().public_numbers() == rsa_pub.public_numbers(),
          "RSA private key matches public key")

    ec_pub = ec_public(k["ec_p521_public"])
    d_bytes = b64d(k["ec_p521_private"]["d"], "d")
    check(len(d_bytes) == 66, "P-521 d is 66 octets")
    ec_priv = ec.derive_private_key(int.from_bytes(d_bytes, "big"), ec.SECP521R1())
    check(ec_priv.public_key().public_numbers() == ec_pub.public_numbers(),
          "EC d matches x/y")

    hmac_key = b64d(k["hmac"]["k"], "hmac k")
    check(len(hmac_key) == 32, "HMAC key is 32 octets")

    keys = {"rsa_public": rsa_pub, "ec_p521_public": ec_pub, "hmac": hmac_key}

    # ---- payload ----------------------------------------------------------
    payload_b64 = data["payload_b64"]
    check(b64d(payload_b64, "payload_b64") == EXPECTED_PAYLOAD, "payload decodes to Figure 7 text")
    check(b64e(EXPECTED_PAYLOAD) == payload_b64, "payload_b64 is the canonical encoding")

    verified = []

    # ---- single-signature examples ----------------------------------------
    for ex in data["examples"]:
        if ex.get("multiple"):
            continue
        sec, alg = ex["section"], ex["alg"]
        key = keys[ex["key"]]
        kid = data["keys"][ex["key"]]["kid"]
        prot = ex["protected_b64"]
        header = json.loads(b64d(prot, sec + " protected_b64"))
        check(header == {"alg": alg, "kid": kid}, sec + " protected header is {alg, kid}")

        parts = ex["compact"].split(".")
        check(len(parts) == 3, sec + " compact has 3 parts")
        c_prot, c_payload, c_sig = parts
        check(c_prot == prot, sec + " compact protected == protected_b64")
        check(c_payload == payload_b64, sec + " compact payload == payload_b64")

        gen = ex["general"]
        check(set(gen) == {"payload", "signatures"} and len(gen["signatures"]) == 1,
              sec + " general shape")
        g = gen["signatures"][0]
        check(gen["payload"] == payload_b64 and g.get("protected") == prot
              and g.get("signature") == c_sig and set(g) == {"protected", "signature"},
              sec + " general agrees with compact")

        flat = ex["flattened"]
        check(set(flat) == {"payload", "protected", "signature"}
              and flat["payload"] == payload_b64 and flat["protected"] == prot
              and flat["signature"] == c_sig,
              sec + " flattened agrees with compact")

        forms = {
            "compact": (c_prot, c_payload, c_sig),
            "general": (g["protected"], gen["payload"], g["signature"]),
            "flattened": (flat["protected"], flat["payload"], flat["signature"]),
        }
        for form, (p, pl, s) in forms.items():
            signing_input = (p + "." + pl).encode("ascii")
            sig = b64d(s, "%s %s signature" % (sec, form))
            if alg == "ES512":
                check(len(sig) == 132, sec + " ES512 signature is R||S, 2x66 octets")
            ok = verify(alg, key, signing_input, sig)
            check(ok, "%s %s %s signature verifies" % (sec, alg, form))
            check(not verify(alg, key, tamper(signing_input), sig),
                  "%s %s %s signature rejects a tampered payload" % (sec, alg, form))
            if ok:
                verified.append("%s %s %s" % (sec, alg, form))

        if alg == "RS256":
            check(ex["deterministic"] is True, sec + " RS256 marked deterministic")
            resig = rsa_priv.sign((prot + "." + payload_b64).encode("ascii"),
                                  padding.PKCS1v15(), hashes.SHA256())
            check(b64e(resig) == c_sig, sec + " RS256 re-signs to the RFC signature")
        else:
            check(ex["deterministic"] is False, sec + " %s marked non-deterministic" % alg)

    # ---- 4.8 multiple signatures -------------------------------------------
    multi = [ex for ex in data["examples"] if ex.get("multiple")]
    check(len(multi) == 1, "exactly one multiple-signature example")
    for ex in multi:
        gen = ex["general"]
        check(set(gen) == {"payload", "signatures"}, "4.8 general shape")
        check(gen["payload"] == payload_b64, "4.8 payload == payload_b64")
        check(len(gen["signatures"]) == len(ex["signatures"]) == 3, "4.8 has 3 signatures")
        for i, (meta, s) in enumerate(zip(ex["signatures"], gen["signatures"]), 1):
            what = "4.8 signature #%d (%s)" % (i, meta["alg"])
            prot_b64 = s.get("protected", "")
            prot = json.loads(b64d(prot_b64, what + " protected")) if prot_b64 else {}
            unprot = s.get("header", {})
            check(not (set(prot) & set(unprot)), what + " header names are disjoint")
            where = {"protected": prot, "header": unprot}
            check(where[meta["alg_in"]].get("alg") == meta["alg"],
                  what + " alg is in " + meta["alg_in"])
            check(where[meta["kid_in"]].get("kid") == meta["kid"],
                  what + " kid is in " + meta["kid_in"])
            check(meta["kid"] == data["keys"][meta["key"]]["kid"], what + " kid names its key")
            signing_input = (prot_b64 + "." + gen["payload"]).encode("ascii")
            sig = b64d(s["signature"], what + " signature")
            ok = verify(meta["alg"], keys[meta["key"]], signing_input, sig)
            check(ok, what + " verifies")
            check(not verify(meta["alg"], keys[meta["key"]], tamper(signing_input), sig),
                  what + " rejects a tampered payload")
            if ok:
                verified.append(what)

    # The PKCS#8 copy of the RSA private key is that key.
    from cryptography.hazmat.primitives import serialization as _ser
    import os as _os
    pem_path = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "rfc7520-rsa.pkcs8.pem")
    with open(pem_path, "rb") as f:
        pem_key = _ser.load_pem_private_key(f.read(), password=None)
    jwk = data["keys"]["rsa_private"]
    nums = pem_key.private_numbers()
    check(nums.d == b64int(jwk["d"]) and nums.public_numbers.n == b64int(jwk["n"]),
          "rfc7520-rsa.pkcs8.pem is the section 3.4 RSA key")

    print("verified:")
    for v in verified:
        print("  ok", v)
    print("%d checks passed, %d failed" % (passes, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # malformed data, inconsistent key, ...
        print("FAIL: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
