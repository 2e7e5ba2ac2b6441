#!/usr/bin/env python3
"""Writes docs/performance.md: cryptohost beside OpenSSL and native RustCrypto, in one run.

Run by `just bench-report` after the build. Three sources, all measured in the same run on the
same machine:
  * whole processes, paired by hyperfine (-N, warm-up, medians): one-shot commands, hashing
    1 GiB, the same through `cryptohost serve`, each beside the OpenSSL command doing the same;
  * `openssl speed` for OpenSSL's own per-operation throughput;
  * criterion's results of `cargo bench` (medians and 95% intervals): native RustCrypto, the
    component, the registry, the server at 1/2/8 clients, SoftHSM2 through cryptoki.
Ratios are time over time: lower is faster. The machine is shared and noisy; the spread is
stated beside each median.
"""

import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/cryptohost"
OUT = ROOT / "docs/performance.md"
BENCHES = ["providers", "pqc", "dsse", "jose", "hsm", "service"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def cpu():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def flags():
    text = pathlib.Path("/proc/cpuinfo").read_text()
    have = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    return ", ".join(f for f in ["sha_ni", "avx2", "aes", "bmi2", "adx"] if f in have) or "none of note"


def openssl_speed():
    """Per-second figures from `openssl speed -mr` (machine-readable)."""
    out = {}
    text = run(["openssl", "speed", "-seconds", "3", "-mr", "ecdsap256", "ecdsap384", "ecdsap521", "rsa2048"]).stdout
    for line in text.splitlines():
        parts = line.split(":")
        if parts[0] == "+F2" and parts[2] == "2048":
            out["RSA-2048 sign/s"], out["RSA-2048 verify/s"] = float(parts[3]), float(parts[4])
        if parts[0] == "+F4":
            out[f"P-{parts[2]} sign/s"], out[f"P-{parts[2]} verify/s"] = float(parts[3]), float(parts[4])
    text = run(["openssl", "speed", "-seconds", "3", "-mr", "-bytes", str(1 << 20), "sha256"]).stdout
    for line in text.splitlines():
        parts = line.split(":")
        if parts[0] == "+F" and parts[2] == "sha256":
            out["SHA-256 bytes/s (1 MiB blocks)"] = float(parts[3])
    return out


def workdir():
    """A config of our own over the components just built (pinned to them), its audit log,
    cache and keys in a temporary directory."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="cryptohost-bench-"))
    text = (ROOT / "cryptohost.toml").read_text()
    text = re.sub(r'^component_dir = .*$', f'component_dir = "{ROOT / "components"}"', text, flags=re.M)
    text = text.replace('path = "audit.jsonl"', f'path = "{d / "audit.jsonl"}"')
    text = text.replace("[cache]\n", f'[cache]\ndir = "{d / "cache"}"\ndigest_dir = "{d / "digests"}"\n', 1)
    (d / "cryptohost.toml").write_text(text)
    os.chmod(d, 0o700)
    run([str(BIN), "--config", str(d / "cryptohost.toml"), "pin", "--manifest", str(ROOT / "components/manifest.json")])
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(d / "ec.pem")])
    run(["openssl", "pkey", "-in", str(d / "ec.pem"), "-pubout", "-out", str(d / "ec.pub")])
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(d / "rsa.pem")])
    run(["openssl", "pkey", "-in", str(d / "rsa.pem"), "-pubout", "-out", str(d / "rsa.pub")])
    (d / "small.bin").write_bytes(os.urandom(4096))
    with open(d / "big.bin", "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(1024):
            f.write(block)
    for k in ["ec", "rsa"]:
        run(["openssl", "dgst", "-sha256", "-sign", str(d / f"{k}.pem"), "-out", str(d / f"{k}.sig"), str(d / "small.bin")])
    run(["openssl", "dgst", "-sha256", "-sign", str(d / "ec.pem"), "-out", str(d / "big.sig"), str(d / "big.bin")])
    return d


def hyperfine(d, name, commands, runs, prepare=None):
    """Median and spread (seconds) of each command, run alternately by hyperfine."""
    out = d / f"{name}.json"
    cmd = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json", str(out), "--style", "none"]
    if prepare:
        cmd += ["--prepare", prepare]
    subprocess.run(cmd + commands, check=True, capture_output=True, text=True, cwd=d)
    results = json.loads(out.read_text())["results"]
    return [(r["median"], r["stddev"] or 0.0, min(r["times"]), max(r["times"])) for r in results]


def processes(d):
    ch = f"{BIN} --config {d / 'cryptohost.toml'} -q"
    sock = d / "serve.sock"
    rows = []
    # Warm the precompiled cache and the descriptor records once.
    subprocess.run(f"{ch} verify --pub {d}/ec.pub --sig {d}/ec.sig {d}/small.bin".split(), check=True, capture_output=True)
    pairs = [
        ("verify ES256, 4 KiB (warm cache)", f"{ch} verify --pub {d}/ec.pub --sig {d}/ec.sig {d}/small.bin",
         f"openssl dgst -sha256 -verify {d}/ec.pub -signature {d}/ec.sig {d}/small.bin", 40),
        ("verify RS256, 4 KiB (warm cache)",
         f"{ch} verify --alg RS256 --pub {d}/rsa.pub --sig {d}/rsa.sig {d}/small.bin",
         f"openssl dgst -sha256 -verify {d}/rsa.pub -signature {d}/rsa.sig {d}/small.bin", 40),
        ("hash SHA-256, 4 KiB", f"{ch} hash --alg SHA-256 {d}/small.bin", f"openssl dgst -sha256 {d}/small.bin", 40),
        ("sign ES256, 4 KiB (cryptohost: simulation key, audited; OpenSSL: key file)",
         f"{ch} sign --key sim:demo --alg ES256 {d}/small.bin --out {d}/sim.sig",
         f"openssl dgst -sha256 -sign {d}/ec.pem -out {d}/o.sig {d}/small.bin", 40),
        ("hash SHA-256, 1 GiB", f"{ch} hash --alg SHA-256 {d}/big.bin", f"openssl dgst -sha256 {d}/big.bin", 5),
        ("verify ES256, 1 GiB", f"{ch} verify --pub {d}/ec.pub --sig {d}/big.sig {d}/big.bin",
         f"openssl dgst -sha256 -verify {d}/ec.pub -signature {d}/big.sig {d}/big.bin", 5),
        ("sign ES256, 1 GiB (cryptohost: simulation key, audited; OpenSSL: key file)",
         f"{ch} sign --key sim:demo --alg ES256 {d}/big.bin --out {d}/big-sim.sig",
         f"openssl dgst -sha256 -sign {d}/ec.pem -out {d}/big-o.sig {d}/big.bin", 5),
    ]
    for label, ours, theirs, runs in pairs:
        (m1, s1, lo1, hi1), (m2, s2, lo2, hi2) = hyperfine(d, "pair", [ours, theirs], runs)
        rows.append((label, m1, s1, m2, s2, runs))
    # Cold: the precompiled cache emptied before each run (every component compiled).
    cold = hyperfine(d, "cold", [f"{ch} verify --pub {d}/ec.pub --sig {d}/ec.sig {d}/small.bin"], 5,
                     prepare=f"rm -rf {d}/cache {d}/digests")
    ossl = hyperfine(d, "ossl", [f"openssl dgst -sha256 -verify {d}/ec.pub -signature {d}/ec.sig {d}/small.bin"], 20)
    rows.append(("verify ES256, 4 KiB (cold cache: every component compiled)", cold[0][0], cold[0][1], ossl[0][0],
                 ossl[0][1], 5))
    # Through the server: the client is the same binary with --socket.
    server = subprocess.Popen([str(BIN), "--config", str(d / "cryptohost.toml"), "-q", "serve", "--listen", f"unix:{sock}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"])
        cl = f"{BIN} --socket {sock} -q"
        for label, ours, theirs, runs in [
            ("verify ES256 through serve (client process)", f"{cl} verify --pub {d}/ec.pub --sig {d}/ec.sig {d}/small.bin",
             f"openssl dgst -sha256 -verify {d}/ec.pub -signature {d}/ec.sig {d}/small.bin", 40),
            ("hash SHA-256, 1 GiB, through serve", f"{cl} hash --alg SHA-256 {d}/big.bin",
             f"openssl dgst -sha256 {d}/big.bin", 5),
        ]:
            (m1, s1, _, _), (m2, s2, _, _) = hyperfine(d, "pair", [ours, theirs], runs)
            rows.append((label, m1, s1, m2, s2, runs))
    finally:
        server.terminate()
        server.wait()
    return rows


def criterion_results():
    """Every criterion benchmark of the run: (group, function) -> (median ns, low, high)."""
    out = {}
    for bench in (ROOT / "target/criterion").rglob("new/benchmark.json"):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())["median"]
        ci = est["confidence_interval"]
        out[(meta["group_id"], meta.get("function_id") or "")] = (
            est["point_estimate"], ci["lower_bound"], ci["upper_bound"])
    return out


def fmt_time(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"


def sandbox_summary():
    """The sandbox's own cost and verification throughput against OpenSSL, from the paired
    rounds of the providers bench (target/paired.json)."""
    path = ROOT / "target/paired.json"
    if not path.exists():
        return ["", "## The sandbox's cost and OpenSSL's throughput", "", "(no paired results: the providers bench did not run)"]
    rows = json.loads(path.read_text())
    rounds = rows[0]["rounds"] if rows else 0
    lines = [
        "",
        "## The sandbox's cost and OpenSSL's throughput",
        "",
        "\"Component code natively\" is the component's own Rust (provider-core with fastverify) built for "
        "this CPU and called in-process; \"through the component\" is the same code in the component under "
        "wasmtime (deadline and memory limits on): fast-verification for ES256, RS256 and PS256 verification "
        "(what serves them by default), offline-verification for the rest. Each operation is called as the "
        "request layer calls it (what `sign`, `verify`, DSSE and the server run): for the hash-then-sign "
        "algorithms the host hashes the 64-byte message natively, on both sides, and the digest is signed or "
        "verified; EdDSA takes the whole message. The rows \"message hashed in the component\" send the whole "
        "message into the component instead, which hashes it without SHA-NI (as under `[policy] "
        "components_only`). The two are measured **paired in "
        f"time**: in each of {rounds} rounds every operation runs a 0.4 s block natively, a 0.4 s block through "
        "the component and, per algorithm, a one-second burst of `openssl speed -elapsed` (wall-clock time, "
        "like the blocks), one after the other; each ratio is taken within its round, and the median over the "
        "rounds is given with its range. Throughput against OpenSSL is per second, one core: **higher is "
        "faster** there. Where the sandbox's cost comes from, with instruction-level profiles: "
        "[`sandbox-cost.md`](sandbox-cost.md).",
        "",
        "| operation | sandbox cost (median [range]) | through the component, per second | OpenSSL per second | "
        "component / OpenSSL (median [range]) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        c, v = r["sandbox_cost"], r["component_over_openssl"]
        theirs = f"{r['openssl_per_s']:,.0f}" if r["openssl_per_s"] else "-"
        ratio = f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" if r["openssl_per_s"] else "-"
        lines.append(f"| {r['case']} | {c[0]:.2f}x [{c[1]:.2f}, {c[2]:.2f}] | {r['component_per_s']:,.0f} | "
                     f"{theirs} | {ratio} |")
    return lines


def main():
    if not BIN.exists():
        sys.exit("bench-report: build first (just build-all)")
    if shutil.which("hyperfine") is None:
        sys.exit("bench-report: hyperfine is missing (cargo install --locked --version 1.20.0 hyperfine)")
    # `--only NAME...` reruns those benches and keeps the other results of the last run (for a
    # bench that failed halfway); by default every bench runs afresh.
    only = sys.argv[sys.argv.index("--only") + 1:] if "--only" in sys.argv else []
    criterion_dir = ROOT / "target/criterion"
    if criterion_dir.exists() and not only:
        shutil.rmtree(criterion_dir)
        (ROOT / "target/paired.json").unlink(missing_ok=True)
    for b in only or BENCHES:
        print(f"bench-report: cargo bench --bench {b}", flush=True)
        subprocess.run(["cargo", "bench", "-p", "cryptohost", "--bench", b, "--", "--noplot"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    print("bench-report: openssl speed", flush=True)
    speed = openssl_speed()
    print("bench-report: whole processes (hyperfine)", flush=True)
    d = workdir()
    try:
        rows = processes(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    crit = criterion_results()

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rev = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT).stdout.strip()
    lines = [
        "# Performance",
        "",
        f"Written by `just bench-report` on {now} at commit `{rev}`: {cpu()}, {os.cpu_count()} cores "
        f"(CPU features: {flags()}), Linux {platform.release()}. Every figure below comes from this one run; the "
        "machine is shared and noisy, so each median is given with its spread, and each comparison is made "
        "between measurements taken side by side (hyperfine alternates the two commands; criterion runs native, "
        "component and registry in one binary). Ratios are time over time: **lower is faster**; 1.00x is parity.",
        "",
        "## Whole processes (hyperfine: -N, 3 warm-up runs, median ± standard deviation)",
        "",
        "| what | cryptohost | OpenSSL | ratio | runs |",
        "|---|---|---|---|---|",
    ]
    for label, m1, s1, m2, s2, runs in rows:
        lines.append(f"| {label} | {fmt_time(m1)} ± {fmt_time(s1)} | {fmt_time(m2)} ± {fmt_time(s2)} | "
                     f"{m1 / m2:.2f}x | {runs} |")
    lines += sandbox_summary()
    lines += [
        "",
        "## OpenSSL's own throughput (`openssl speed -seconds 3`, one core)",
        "",
        "| operation | per second | time per operation |",
        "|---|---|---|",
    ]
    for k, v in speed.items():
        per = fmt_time(1 / v) if "bytes" not in k else f"{v / 1e9:.2f} GB/s"
        lines.append(f"| {k} | {v:,.0f} | {per} |")
    lines += [
        "",
        "## In-process (criterion: median and 95% interval of the median)",
        "",
        "Each group's first line is the reference its ratios are taken against (native RustCrypto, the "
        "in-process call, or cryptoki directly, as the group names it).",
        "",
    ]
    groups = {}
    for (g, f), v in sorted(crit.items()):
        groups.setdefault(g, []).append((f, v))
    ref_speed = {"verify-ES256": "P-256 verify/s", "verify-ES384": "P-384 verify/s", "verify-RS256": "RSA-2048 verify/s",
                 "verify-PS256": "RSA-2048 verify/s"}
    for g, fns in groups.items():
        # The reference: native, in-process or cryptoki-direct when the group has one.
        ref = next((v for f, v in fns if f.startswith(("native", "in-process", "cryptoki-direct-1"))), fns[0][1])
        lines += [f"### {g}", "", "| | median | 95% interval | ratio |", "|---|---|---|---|"]
        for f, (m, lo, hi) in fns:
            lines.append(f"| {f} | {fmt_time(m / 1e9)} | {fmt_time(lo / 1e9)} to {fmt_time(hi / 1e9)} | "
                         f"{m / ref[0]:.2f}x |")
        if g in ref_speed and ref_speed[g] in speed:
            t = 1 / speed[ref_speed[g]]
            lines.append(f"| OpenSSL (`openssl speed`, {ref_speed[g]}) | {fmt_time(t)} | | {t * 1e9 / ref[0]:.2f}x |")
        lines.append("")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"bench-report: wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
