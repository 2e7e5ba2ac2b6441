//! Hostile archives against the bundle reader, each run under a memory cap and a deadline:
//! huge long-name and PAX headers, zip bombs and entry floods, links, devices, sparse files and
//! hidden data; and archives from other tar writers that must still verify.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bundle::{Kit, kit, s};
use crate::common::{self, stderr};

/// The data segment a hostile-archive run may use (`ulimit -d`: every heap allocation counts;
/// wasmtime's address-space reservations do not). A bundle needs a few MiB; the hostile inputs
/// below would make an unbounded reader take 1 GiB or more.
const MEMORY_CAP_MIB: u64 = 512;
/// What a hostile header declares and really carries (as compressed zeros): 1 GiB.
pub(crate) const HOSTILE_BYTES: u64 = 1 << 30;
/// Long enough for any honest run on a loaded machine; a blocked one never ends.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `cryptohost --config CONFIG ARGS...` under [`MEMORY_CAP_MIB`] and [`DEADLINE`], so a
/// run that reads without bound dies (and fails the test) instead of taking the machine, and
/// one that blocks on a fifo is killed and fails the test.
pub(crate) fn run_bounded(config: &Path, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -d {} && exec \"$0\" \"$@\"", MEMORY_CAP_MIB * 1024))
        .arg(common::binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cryptohost {args:?} did not finish within {DEADLINE:?}: blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output { status, stdout: fs::read(&out_path).unwrap(), stderr: fs::read(&err_path).unwrap() };
    let err = stderr(&out);
    assert!(
        out.status.code().is_some() && !err.contains("panicked") && !err.contains("memory allocation"),
        "cryptohost {args:?} died ({:?}) within {MEMORY_CAP_MIB} MiB: {err}",
        out.status
    );
    out
}

/// `bundle install` of a hostile archive under the memory cap: refused with `why`, nothing
/// installed, no staging directory left.
fn refused_bounded(k: &Kit, archive: &Path, why: &str) {
    let into = k.dir.path().join(format!("into-{}", archive.file_name().unwrap().to_string_lossy()));
    let out = run_bounded(
        &k.config,
        &["bundle", "install", s(archive), "--bootstrap-pub", s(&k.bundle_pub), "--into", s(&into)],
    );
    assert_eq!(out.status.code(), Some(2), "{}: {}", archive.display(), stderr(&out));
    assert!(stderr(&out).contains(why), "{}: {:?} should say {why:?}", archive.display(), stderr(&out));
    assert!(!into.exists(), "nothing may be written for a refused bundle");
    assert!(leftovers(k.dir.path(), "staging").is_empty(), "no staging left behind");
}

/// Names in `dir` containing `part`.
pub(crate) fn leftovers(dir: &Path, part: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(part))
        .collect()
}

/// A hand-written `.tar.gz`, block by block, so gigabytes of zeros never sit in memory.
struct RawTar {
    gz: flate2::write::GzEncoder<fs::File>,
}

impl RawTar {
    fn new(path: &Path) -> RawTar {
        RawTar { gz: flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast()) }
    }

    /// A GNU header with a raw name and type flag, declaring `size` (base-256 past 8 GiB).
    fn header(&mut self, name: &[u8], flag: u8, size: u64) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(tar::EntryType::new(flag));
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        self.gz.write_all(h.as_bytes()).unwrap();
        self
    }

    fn pad(&mut self, len: u64) {
        let pad = (512 - len % 512) % 512;
        self.gz.write_all(&vec![0u8; pad as usize]).unwrap();
    }

    fn data(&mut self, bytes: &[u8]) -> &mut Self {
        self.gz.write_all(bytes).unwrap();
        self.pad(bytes.len() as u64);
        self
    }

    fn zeros(&mut self, len: u64) -> &mut Self {
        let chunk = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64);
            self.gz.write_all(&chunk[..n as usize]).unwrap();
            left -= n;
        }
        self.pad(len);
        self
    }

    /// A regular file with contents.
    fn file(&mut self, name: &str, bytes: &[u8]) -> &mut Self {
        self.header(name.as_bytes(), b'0', bytes.len() as u64).data(bytes)
    }

    /// The end-of-archive marker, and done.
    fn end(mut self) {
        self.gz.write_all(&[0u8; 1024]).unwrap();
        self.gz.finish().unwrap();
    }
}

/// One PAX record: `LEN KEY=VALUE\n`, LEN counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!("{key}={value}\n");
    let mut len = body.len() + 2;
    while format!("{len} {body}").len() != len {
        len += 1;
    }
    format!("{len} {body}").into_bytes()
}

/// The decompressed tar stream of a `.tar.gz`.
fn untar_gz(path: &Path) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap()).read_to_end(&mut tar).unwrap();
    tar
}

fn gzip_to(path: &Path, tar: &[u8]) {
    let mut gz = flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    gz.finish().unwrap();
}

#[test]
fn huge_gnu_long_name_and_pax_headers_are_refused_before_they_are_read() {
    let k = kit();
    let d = k.dir.path();

    // A GNU long name (`././@LongLink`, type L) of 1 GiB, then a file it would name.
    let long = d.join("long-name.tar.gz");
    let mut t = RawTar::new(&long);
    t.header(b"././@LongLink", b'L', HOSTILE_BYTES).zeros(HOSTILE_BYTES).file("trust-anchors.json", b"{}");
    t.end();
    assert!(fs::metadata(&long).unwrap().len() < 8 << 20, "the hostile archive itself is small");
    refused_bounded(&k, &long, "GNU long name (././@LongLink) of 1073741824 bytes, over the limit of 4096");

    // A PAX extended header (type x) of 1 GiB: one record that never ends.
    let pax = d.join("pax.tar.gz");
    let mut t = RawTar::new(&pax);
    t.header(b"PaxHeaders/trust-anchors.json", b'x', HOSTILE_BYTES);
    t.gz.write_all(b"1073741824 comment=").unwrap();
    t.zeros(HOSTILE_BYTES - 19).file("trust-anchors.json", b"{}");
    t.end();
    refused_bounded(&k, &pax, "PAX header of 1073741824 bytes, over the limit of 65536");

    // The same as a global header (type g).
    let global = d.join("pax-global.tar.gz");
    let mut t = RawTar::new(&global);
    t.header(b"pax_global_header", b'g', HOSTILE_BYTES).zeros(HOSTILE_BYTES).file("trust-anchors.json", b"{}");
    t.end();
    refused_bounded(&k, &global, "PAX header of 1073741824 bytes, over the limit of 65536");

    // Just over the caps is already refused; a GNU long link (K) is refused outright.
    let over = d.join("long-name-4097.tar.gz");
    let mut t = RawTar::new(&over);
    t.header(b"././@LongLink", b'L', 4097).data(&[b'a'; 4097]).file("trust-anchors.json", b"{}");
    t.end();
    refused_bounded(&k, &over, "of 4097 bytes, over the limit of 4096");
    let link = d.join("long-link.tar.gz");
    let mut t = RawTar::new(&link);
    t.header(b"././@LongLink", b'K', 11).data(b"/etc/shadow").file("trust-anchors.json", b"{}");
    t.end();
    refused_bounded(&k, &link, "GNU long link name (links are refused)");
}

#[test]
fn zip_bombs_and_many_tiny_entries_stop_at_the_first_limit() {
    let k = kit();
    let good = k.create("good.tar.gz");
    let d = k.dir.path();

    // A signed, valid bundle followed by 1 GiB of zeros after its end-of-archive marker:
    // every decompressed byte counts, padding included.
    let bomb = d.join("zeros-after-end.tar.gz");
    {
        let mut t = RawTar::new(&bomb);
        t.gz.write_all(&untar_gz(&good)).unwrap();
        t.zeros(HOSTILE_BYTES);
        t.gz.finish().unwrap();
    }
    refused_bounded(&k, &bomb, "expands past the limit of 67108864 bytes of decompressed data");

    // One file that claims 16 MiB + 1 (over the per-file cap) is refused from its header.
    let big = d.join("big-file.tar.gz");
    let mut t = RawTar::new(&big);
    t.header(b"public-keys/big.pub", b'0', (16 << 20) + 1).zeros((16 << 20) + 1);
    t.end();
    refused_bounded(&k, &big, "declares 16777217 bytes (limit 16777216 for one file)");

    // 5,000 empty files: more tar entries than the cap (4,096).
    let tiny = d.join("tiny-files.tar.gz");
    let mut t = RawTar::new(&tiny);
    for i in 0..5000 {
        t.header(format!("public-keys/k{i}.pub").as_bytes(), b'0', 0);
    }
    t.end();
    refused_bounded(&k, &tiny, "more than 4096 tar entries");

    // 5,000 empty PAX global headers: extension headers are entries too.
    let globals = d.join("tiny-globals.tar.gz");
    let mut t = RawTar::new(&globals);
    for _ in 0..5000 {
        t.header(b"pax_global_header", b'g', 0);
    }
    t.file("trust-anchors.json", b"{}");
    t.end();
    refused_bounded(&k, &globals, "more than 4096 tar entries");

    // An archive file over the size cap (64 MiB) is refused before a byte is decompressed.
    let huge = d.join("huge.tar.gz");
    fs::copy(&good, &huge).unwrap();
    fs::OpenOptions::new().write(true).open(&huge).unwrap().set_len((64 << 20) + 1).unwrap();
    refused_bounded(&k, &huge, "is 67108865 bytes, over the limit of 67108864 for an archive");
}

#[test]
fn links_devices_sparse_files_and_hidden_data_are_refused() {
    let k = kit();
    let good = k.create("good.tar.gz");
    let d = k.dir.path();
    for (flag, why) in [
        (b'1', "is a hard link, not a regular file or directory"),
        (b'3', "is a character device"),
        (b'4', "is a block device"),
        (b'6', "is a fifo"),
        (b'7', "is a contiguous file"),
        (b'S', "is a GNU sparse file"),
        (b'V', "is a volume label"),
    ] {
        let path = d.join(format!("type-{}.tar.gz", char::from(flag)));
        let mut t = RawTar::new(&path);
        t.header(b"trust-anchors.json", flag, 0);
        t.end();
        refused_bounded(&k, &path, why);
    }

    // A PAX header that makes the next file sparse.
    let sparse = d.join("pax-sparse.tar.gz");
    let mut t = RawTar::new(&sparse);
    let record = pax_record("GNU.sparse.major", "1");
    t.header(b"PaxHeaders/x", b'x', record.len() as u64).data(&record).file("trust-anchors.json", b"{}");
    t.end();
    refused_bounded(&k, &sparse, "GNU sparse file");

    // A directory entry is checked like a file: no way out of the bundle.
    let dir = d.join("directory-traversal.tar.gz");
    let mut t = RawTar::new(&dir);
    t.header(b"../../evil/", b'5', 0);
    t.end();
    refused_bounded(&k, &dir, "escapes the bundle");

    // So is a name given by a PAX header.
    let pax_trav = d.join("pax-traversal.tar.gz");
    let mut t = RawTar::new(&pax_trav);
    let record = pax_record("path", "../../evil");
    t.header(b"PaxHeaders/x", b'x', record.len() as u64).data(&record).file("harmless", b"x");
    t.end();
    refused_bounded(&k, &pax_trav, "escapes the bundle");

    // A valid signed bundle with something hidden after its end-of-archive marker.
    let hidden = d.join("hidden-after-end.tar.gz");
    let mut tar = untar_gz(&good);
    tar.extend_from_slice(&[b'!'; 512]);
    gzip_to(&hidden, &tar);
    refused_bounded(&k, &hidden, "data after the end-of-archive marker");

    // ...or a second gzip member after its gzip stream.
    let appended = d.join("appended-member.tar.gz");
    let mut bytes = fs::read(&good).unwrap();
    let mut second = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    second.write_all(b"unchecked").unwrap();
    bytes.extend(second.finish().unwrap());
    fs::write(&appended, bytes).unwrap();
    refused_bounded(&k, &appended, "data after the end of the gzip stream");

    // A header whose checksum does not add up.
    let bad_sum = d.join("bad-checksum.tar.gz");
    let mut tar = untar_gz(&good);
    tar[0] ^= 1;
    gzip_to(&bad_sum, &tar);
    refused_bounded(&k, &bad_sum, "bad checksum");

    // No end-of-archive marker: cut at a header boundary.
    let cut = d.join("no-end-marker.tar.gz");
    let tar = untar_gz(&good);
    gzip_to(&cut, &tar[..1024]);
    refused_bounded(&k, &cut, "truncated");
}

#[test]
fn long_names_and_pax_paths_from_other_writers_still_verify() {
    let k = kit();
    // A key path past the 100-byte tar name field (108 bytes): our writer adds a GNU long
    // name; ustar splits it into prefix and name.
    let long_name = format!("{}.pub", "k".repeat(92));
    fs::copy(k.source.join("public-keys/scanner-key-001.pub"), k.source.join("public-keys").join(&long_name)).unwrap();
    let good = k.create("long.tar.gz");
    let into = k.dir.path().join("installed-long");
    let out = k.install(&good, &into);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(into.join("public-keys").join(&long_name).is_file());

    // The same files as a PAX writer lays them out: a global header, then each file's real
    // path in its own extended header and a placeholder in the ustar name field.
    let mut files = Vec::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(&good).unwrap()));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.push((name, data));
    }
    let pax = k.dir.path().join("pax.tar.gz");
    let mut t = RawTar::new(&pax);
    let global = pax_record("comment", "written by hand");
    t.header(b"pax_global_header", b'g', global.len() as u64).data(&global);
    for (i, (name, data)) in files.iter().enumerate() {
        let mut records = pax_record("path", name);
        records.extend(pax_record("mtime", "1700000000.5"));
        t.header(format!("PaxHeaders/{i}").as_bytes(), b'x', records.len() as u64).data(&records);
        t.file(&format!("placeholder-{i}"), data);
    }
    t.end();
    let verified = run_bounded(&k.config, &["bundle", "verify", s(&pax), "--bootstrap-pub", s(&k.bundle_pub)]);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));

    // GNU tar's own formats, from the installed tree (`./` and directory entries included).
    for format in ["gnu", "posix", "ustar"] {
        let repacked = k.dir.path().join(format!("system-tar-{format}.tar.gz"));
        let st = Command::new("tar")
            .args(["--format", format, "-czf"])
            .arg(&repacked)
            .arg("-C")
            .arg(&into)
            .arg(".")
            .status()
            .expect("tar is installed");
        assert!(st.success(), "tar --format {format}");
        let verified = run_bounded(&k.config, &["bundle", "verify", s(&repacked), "--bootstrap-pub", s(&k.bundle_pub)]);
        assert_eq!(verified.status.code(), Some(0), "tar --format {format}: {}", stderr(&verified));
    }
}
