#!/usr/bin/env node
// A JOSE interop peer for tests/all/jose_interop.rs, on Node's jose (the npm registry), loaded
// from $JOSE_PEER_NODE_DIR (default: target/interop/node of this repository, where
// tests/interop/jose/setup.sh installs it).
//
// The same small CLI as peer.py (Python's jwcrypto):
//   sign --alg ALG --key PRIVATE_KEY_PEM --serialization compact|flattened|general
//        --payload FILE [--unencoded] [--detached] [--kid KID]      -> the JWS on stdout
//   verify --key PUBLIC_KEY (SPKI PEM or JWK JSON) --jws FILE [--detached FILE] [--unencoded]
//                                    -> exit 0 and the payload (base64) if valid, exit 1 if not
//   jwk --key PUBLIC_PEM                -> the public JWK
//   thumbprint --key PUBLIC_PEM_or_JWK  -> the RFC 7638 SHA-256 thumbprint (base64url)
//   jwt-sign --alg ALG --key PRIVATE_PEM --claims FILE              -> the JWT
//   jwt-verify --key PUBLIC --jwt FILE --iss ISS --aud AUD  -> the claims JSON, exit 1 if invalid
//   version                             -> "jose VERSION"
//   batch JOBS_FILE  -> runs each job (a JSON list of argument lists, as above) in this one
//                       process and prints a JSON list of {"code", "stdout", "stderr"}
//
// Exit codes: 0 done (valid), 1 invalid (verify, jwt-verify), 2 bad usage or input.

import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.JOSE_PEER_NODE_DIR || join(here, '..', '..', '..', 'target', 'interop', 'node');
const require = createRequire(join(nodeDir, 'package.json'));
let joseEntry;
try {
  joseEntry = require.resolve('jose');
} catch {
  process.stderr.write(`jose is not installed in ${nodeDir} (tests/interop/jose/setup.sh installs it)\n`);
  process.exit(2);
}
const jose = await import(pathToFileURL(joseEntry).href);
const joseVersion = JSON.parse(readFileSync(require.resolve('jose/package.json'), 'utf8')).version;

class Invalid extends Error {}
class Usage extends Error {}

const FLAGS = new Set(['--unencoded', '--detached']);

/** --name value pairs and boolean flags; `--detached FILE` (verify) takes a value. */
function parse(argv, valued) {
  const [command, ...rest] = argv;
  const a = { command };
  for (let i = 0; i < rest.length; i++) {
    const name = rest[i];
    if (!name.startsWith('--')) throw new Usage(`unexpected argument ${name}`);
    const key = name.slice(2);
    if (FLAGS.has(name) && !valued.has(key)) {
      a[key] = true;
    } else {
      if (i + 1 >= rest.length) throw new Usage(`${name} needs a value`);
      a[key] = rest[++i];
    }
  }
  return a;
}

function need(a, ...names) {
  for (const n of names) if (a[n] === undefined) throw new Usage(`${a.command}: --${n} is required`);
}

const read = (path) => readFileSync(path);
const text = (path) => readFileSync(path, 'utf8');
const b64u = (bytes) => Buffer.from(bytes).toString('base64url');
const isJwk = (s) => s.trimStart().startsWith('{');

/** The JOSE algorithm a public key decides (only used to import a PEM for `jwk`). */
function algOfPem(pem) {
  const k = createPublicKey(pem);
  switch (k.asymmetricKeyType) {
    case 'ec':
      return { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }[k.asymmetricKeyDetails.namedCurve];
    case 'rsa':
      return 'RS256';
    case 'ed25519':
      return 'EdDSA';
    default:
      throw new Usage(`unsupported key type ${k.asymmetricKeyType}`);
  }
}

/** A public key (SPKI PEM or JWK) for `alg`. */
async function publicKey(path, alg) {
  const s = text(path);
  if (isJwk(s)) {
    const jwk = JSON.parse(s);
    if (jwk.d !== undefined) throw new Usage(`${path}: a private JWK where a public one was expected`);
    return jose.importJWK(jwk, alg);
  }
  return jose.importSPKI(s, alg, { extractable: true });
}

async function sign(a) {
  need(a, 'alg', 'key', 'payload');
  const serialization = a.serialization ?? 'compact';
  const key = await jose.importPKCS8(text(a.key), a.alg);
  const payload = new Uint8Array(read(a.payload));
  const header = { alg: a.alg };
  if (a.kid !== undefined) header.kid = a.kid;
  if (a.unencoded) Object.assign(header, { b64: false, crit: ['b64'] });
  // jose signs an unencoded payload (RFC 7797) only through the flattened and general
  // classes (CompactSign refuses b64 false: "use the flattened module"), and leaves it out of
  // what they return (lib/jws_sign.js: the payload member is "" when b64 is false): the
  // caller attaches it, as text (RFC 7797 section 3), when it is not to be detached.
  const attach = (jws) => {
    if (a.detached) delete jws.payload;
    else if (a.unencoded) jws.payload = new TextDecoder('utf-8', { fatal: true }).decode(payload);
    return jws;
  };
  if (serialization === 'compact') {
    if (a.detached || a.unencoded) {
      // A detached compact JWS (RFC 7515 appendix F) is a flattened one with its payload left
      // out, written compact.
      const f = attach(await new jose.FlattenedSign(payload).setProtectedHeader(header).sign(key));
      if (a.unencoded && !a.detached && f.payload.includes('.')) {
        throw new Usage('an unencoded compact payload cannot hold "." (RFC 7797 section 5.2)');
      }
      return `${f.protected}.${f.payload ?? ''}.${f.signature}`;
    }
    return new jose.CompactSign(payload).setProtectedHeader(header).sign(key);
  }
  if (serialization === 'flattened') {
    return JSON.stringify(attach(await new jose.FlattenedSign(payload).setProtectedHeader(header).sign(key)));
  }
  if (serialization === 'general') {
    const g = await new jose.GeneralSign(payload).addSignature(key).setProtectedHeader(header).done().sign();
    return JSON.stringify(attach(g));
  }
  throw new Usage(`unknown serialization ${serialization}`);
}

function protectedHeaders(jws) {
  if (typeof jws === 'string') return [jose.decodeProtectedHeader(jws)];
  return (jws.signatures ?? [jws]).map((s) => (s.protected ? jose.decodeProtectedHeader(s) : {}));
}

async function verify(a) {
  need(a, 'key', 'jws');
  const raw = text(a.jws).trim();
  const jws = isJwk(raw) ? JSON.parse(raw) : raw;
  const headers = protectedHeaders(jws);
  if (a.unencoded && !headers.every((h) => h.b64 === false)) {
    throw new Invalid('--unencoded: the protected header does not say b64 false');
  }
  const keyFor = (header) => publicKey(a.key, header.alg);
  let result;
  try {
    if (typeof jws === 'string') {
      const [protectedPart, payloadPart, signature] = jws.split('.');
      if (a.detached !== undefined) {
        if (payloadPart !== '') throw new Invalid('--detached given, but the JWS carries a payload');
        const detached = new Uint8Array(read(a.detached));
        // The payload reattached (RFC 7515 appendix F): base64url-encoded when b64 is true; as
        // it is (bytes, through the flattened form) when it is false (RFC 7797).
        if (headers[0].b64 === false) {
          result = await jose.flattenedVerify({ protected: protectedPart, payload: detached, signature }, keyFor);
        } else {
          result = await jose.compactVerify(`${protectedPart}.${b64u(detached)}.${signature}`, keyFor);
        }
      } else {
        result = await jose.compactVerify(jws, keyFor);
      }
    } else {
      if (a.detached !== undefined) {
        if (jws.payload !== undefined && jws.payload !== '') {
          throw new Invalid('--detached given, but the JWS carries a payload');
        }
        const detached = new Uint8Array(read(a.detached));
        jws.payload = headers[0].b64 === false ? detached : b64u(detached);
      }
      result = jws.signatures ? await jose.generalVerify(jws, keyFor) : await jose.flattenedVerify(jws, keyFor);
    }
  } catch (e) {
    if (e instanceof Invalid) throw e;
    throw new Invalid(`${e.code ?? e.name}: ${e.message}`);
  }
  return Buffer.from(result.payload).toString('base64');
}

async function publicJwk(a) {
  need(a, 'key');
  const s = text(a.key);
  if (isJwk(s)) return JSON.stringify(JSON.parse(s));
  return JSON.stringify(await jose.exportJWK(await jose.importSPKI(s, algOfPem(s), { extractable: true })));
}

async function thumbprint(a) {
  need(a, 'key');
  const s = text(a.key);
  const jwk = isJwk(s) ? JSON.parse(s) : await jose.exportJWK(await jose.importSPKI(s, algOfPem(s), { extractable: true }));
  return jose.calculateJwkThumbprint(jwk, 'sha256');
}

async function jwtSign(a) {
  need(a, 'alg', 'key', 'claims');
  const claims = JSON.parse(text(a.claims));
  const key = await jose.importPKCS8(text(a.key), a.alg);
  return new jose.SignJWT(claims).setProtectedHeader({ alg: a.alg, typ: 'JWT' }).sign(key);
}

async function jwtVerify(a) {
  need(a, 'key', 'jwt', 'iss', 'aud');
  const token = text(a.jwt).trim();
  try {
    // exp is required and checked against now (jose's clockTolerance: 60 s, as jwcrypto's).
    const { payload } = await jose.jwtVerify(token, (header) => publicKey(a.key, header.alg), {
      issuer: a.iss,
      audience: a.aud,
      requiredClaims: ['exp'],
      clockTolerance: 60,
    });
    const sorted = Object.fromEntries(Object.entries(payload).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
    return JSON.stringify(sorted);
  } catch (e) {
    throw new Invalid(`${e.code ?? e.name}: ${e.message}`);
  }
}

const COMMANDS = {
  sign: [sign, new Set()],
  verify: [verify, new Set(['detached'])],
  jwk: [publicJwk, new Set()],
  thumbprint: [thumbprint, new Set()],
  'jwt-sign': [jwtSign, new Set()],
  'jwt-verify': [jwtVerify, new Set()],
  version: [async () => `jose ${joseVersion}`, new Set()],
};

/** [exit code, stdout, stderr] of one command. */
async function run(argv) {
  try {
    const entry = COMMANDS[argv[0]];
    if (!entry) throw new Usage(`unknown command ${argv[0]}`);
    const [fn, valued] = entry;
    return [0, `${await fn(parse(argv, valued))}\n`, ''];
  } catch (e) {
    if (e instanceof Invalid) return [1, '', `invalid: ${e.message}\n`];
    if (e instanceof Usage) return [2, '', `usage: ${e.message}\n`];
    return [2, '', `error: ${e.code ?? e.name}: ${e.message}\n`];
  }
}

const argv = process.argv.slice(2);
if (argv[0] === 'batch') {
  if (argv.length !== 2) {
    process.stderr.write('usage: peer.mjs batch JOBS_FILE\n');
    process.exit(2);
  }
  const results = [];
  for (const job of JSON.parse(text(argv[1]))) {
    const [code, stdout, stderr] = await run(job.map(String));
    results.push({ code, stdout, stderr });
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
} else {
  const [code, stdout, stderr] = await run(argv);
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  process.exitCode = code;
}
