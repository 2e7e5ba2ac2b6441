#!/usr/bin/env python3
"""A JOSE interop peer for tests/all/jose_interop.rs, on Python's jwcrypto (PyPI).

The same small CLI as peer.mjs (Node's jose):

  sign --alg ALG --key PRIVATE_KEY_PEM --serialization compact|flattened|general
       --payload FILE [--unencoded] [--detached] [--kid KID]      -> the JWS on stdout
  verify --key PUBLIC_KEY (SPKI PEM or JWK JSON) --jws FILE [--detached FILE] [--unencoded]
                                     -> exit 0 and the payload (base64) if valid, exit 1 if not
  jwk --key PUBLIC_PEM                 -> the public JWK
  thumbprint --key PUBLIC_PEM_or_JWK   -> the RFC 7638 SHA-256 thumbprint (base64url)
  jwt-sign --alg ALG --key PRIVATE_PEM --claims FILE               -> the JWT
  jwt-verify --key PUBLIC --jwt FILE --iss ISS --aud AUD   -> the claims JSON, exit 1 if invalid
  version                              -> "jwcrypto VERSION"
  batch JOBS_FILE  -> runs each job (a JSON list of argument lists, as above) in this one
                      process and prints a JSON list of {"code", "stdout", "stderr"}

Exit codes: 0 done (valid), 1 invalid (verify, jwt-verify), 2 bad usage or input.
"""

import argparse
import base64
import importlib.metadata
import json
import sys

from jwcrypto import jwk, jws, jwt
from jwcrypto.common import json_decode


class Invalid(Exception):
    """The JWS or JWT does not verify (exit 1)."""


class Usage(Exception):
    """Bad arguments or input (exit 2)."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Usage(message)


def parser():
    p = Parser(prog="peer.py")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sign")
    s.add_argument("--alg", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--serialization", choices=["compact", "flattened", "general"], default="compact")
    s.add_argument("--payload", required=True)
    s.add_argument("--unencoded", action="store_true")
    s.add_argument("--detached", action="store_true")
    s.add_argument("--kid")
    v = sub.add_parser("verify")
    v.add_argument("--key", required=True)
    v.add_argument("--jws", required=True)
    v.add_argument("--detached")
    v.add_argument("--unencoded", action="store_true")
    j = sub.add_parser("jwk")
    j.add_argument("--key", required=True)
    t = sub.add_parser("thumbprint")
    t.add_argument("--key", required=True)
    js = sub.add_parser("jwt-sign")
    js.add_argument("--alg", required=True)
    js.add_argument("--key", required=True)
    js.add_argument("--claims", required=True)
    jv = sub.add_parser("jwt-verify")
    jv.add_argument("--key", required=True)
    jv.add_argument("--jwt", required=True)
    jv.add_argument("--iss", required=True)
    jv.add_argument("--aud", required=True)
    sub.add_parser("version")
    b = sub.add_parser("batch")
    b.add_argument("jobs")
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def private_key(path):
    return jwk.JWK.from_pem(read(path))


def public_key(path):
    """An SPKI PEM, or a JWK (JSON)."""
    data = read(path)
    if data.lstrip().startswith(b"{"):
        key = jwk.JWK.from_json(data.decode("utf-8"))
        if key.has_private:
            raise Usage(f"{path}: a private JWK where a public one was expected")
        return key
    key = jwk.JWK.from_pem(data)
    if key.has_private:
        raise Usage(f"{path}: a private key where a public one was expected")
    return key


def sign(a):
    payload = read(a.payload)
    protected = {"alg": a.alg}
    if a.kid is not None:
        protected["kid"] = a.kid
    if a.unencoded:
        # RFC 7797: b64 false, listed in crit. jwcrypto puts an unencoded payload into the
        # JSON serialization as it is given, so it is given as text.
        protected["b64"] = False
        protected["crit"] = ["b64"]
        payload = payload.decode("utf-8")
    token = jws.JWS(payload)
    token.add_signature(private_key(a.key), alg=None, protected=json.dumps(protected))
    if a.detached:
        token.detach_payload()
    if a.serialization == "compact":
        return token.serialize(compact=True)
    flattened = json.loads(token.serialize(compact=False))
    if a.detached:
        # RFC 7515 appendix F: the payload is left out (jwcrypto writes it as "").
        flattened.pop("payload", None)
    if a.serialization == "flattened":
        return json.dumps(flattened)
    # jwcrypto writes the general serialization only for two signatures or more: one signature
    # is written flattened. Its members go, unchanged, into the one-element "signatures" array
    # of RFC 7515 section 7.2.1 (what the general form of one signature is).
    general = {k: v for k, v in flattened.items() if k == "payload"}
    general["signatures"] = [{k: v for k, v in flattened.items() if k != "payload"}]
    return json.dumps(general)


def protected_headers(text):
    """The protected headers of a JWS, any serialization."""
    text = text.strip()
    if text.startswith("{"):
        doc = json.loads(text)
        sigs = doc.get("signatures", [doc])
        return [json_decode(jws.base64url_decode(s.get("protected", ""))) if s.get("protected") else {} for s in sigs]
    return [json_decode(jws.base64url_decode(text.split(".")[0]))]


def verify(a):
    text = read(a.jws).decode("utf-8").strip()
    key = public_key(a.key)
    if a.unencoded and not all(h.get("b64") is False for h in protected_headers(text)):
        raise Invalid("--unencoded: the protected header does not say b64 false")
    detached = read(a.detached) if a.detached is not None else None
    token = jws.JWS()
    try:
        token.deserialize(text)
        token.verify(key, detached_payload=detached)
    except Exception as e:  # noqa: BLE001 - any failure to verify is "invalid"
        raise Invalid(f"{type(e).__name__}: {e}") from e
    # With a detached payload, jwcrypto's token.payload is what the JWS carried (empty): the
    # payload verified is the detached one.
    payload = detached if detached is not None else token.payload
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return base64.b64encode(payload).decode("ascii")


def public_jwk(a):
    return public_key(a.key).export_public()


def thumbprint(a):
    return public_key(a.key).thumbprint()


def jwt_sign(a):
    claims = json.loads(read(a.claims))
    token = jwt.JWT(header={"alg": a.alg, "typ": "JWT"}, claims=claims)
    token.make_signed_token(private_key(a.key))
    return token.serialize()


def jwt_verify(a):
    text = read(a.jwt).decode("utf-8").strip()
    key = public_key(a.key)
    try:
        # exp is required and checked against now (with jwcrypto's 60 s leeway).
        token = jwt.JWT(
            jwt=text,
            key=key,
            check_claims={"iss": a.iss, "aud": a.aud, "exp": None},
            expected_type="JWS",
            strict_serialization=True,
        )
    except Exception as e:  # noqa: BLE001 - any failure to verify is "invalid"
        raise Invalid(f"{type(e).__name__}: {e}") from e
    return json.dumps(json.loads(token.claims), sort_keys=True)


COMMANDS = {
    "sign": sign,
    "verify": verify,
    "jwk": public_jwk,
    "thumbprint": thumbprint,
    "jwt-sign": jwt_sign,
    "jwt-verify": jwt_verify,
    "version": lambda a: "jwcrypto " + importlib.metadata.version("jwcrypto"),
}


def run(argv):
    """(exit code, stdout, stderr) of one command."""
    try:
        a = parser().parse_args(argv)
        if a.command == "batch":
            raise Usage("batch cannot be nested")
        return 0, COMMANDS[a.command](a) + "\n", ""
    except Invalid as e:
        return 1, "", f"invalid: {e}\n"
    except Usage as e:
        return 2, "", f"usage: {e}\n"
    except Exception as e:  # noqa: BLE001 - reported, with its type, as bad input
        return 2, "", f"error: {type(e).__name__}: {e}\n"


def main(argv):
    if argv[:1] == ["batch"]:
        if len(argv) != 2:
            print("usage: peer.py batch JOBS_FILE", file=sys.stderr)
            return 2
        jobs = json.loads(read(argv[1]))
        results = []
        for job in jobs:
            code, out, err = run([str(x) for x in job])
            results.append({"code": code, "stdout": out, "stderr": err})
        sys.stdout.write(json.dumps(results) + "\n")
        return 0
    code, out, err = run(argv)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
