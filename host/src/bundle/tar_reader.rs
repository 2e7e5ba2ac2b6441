//! Our own tar reader over a size-capped gzip stream: every decompressed byte is charged
//! against the bundle limits before it is read, and every header is capped.

// The reader shares the bundle module's limits, errors and path rules.
use super::*;

const BLOCK: usize = 512;

/// The decompressed stream of an archive. Every byte (headers, extension records, file data,
/// padding, the end marker and what follows it) is charged against `limit` before it is read,
/// so a bomb stops at the first excess without being decompressed further.
struct Budgeted<R> {
    inner: R,
    used: u64,
    limit: u64,
}

impl<R: Read> Budgeted<R> {
    fn over(&self) -> BundleError {
        BundleError::Refused(format!(
            "archive expands past the limit of {} bytes of decompressed data: refused (decompression bomb?)",
            self.limit
        ))
    }

    fn charge(&mut self, n: u64) -> Result<(), BundleError> {
        match self.used.checked_add(n) {
            Some(used) if used <= self.limit => {
                self.used = used;
                Ok(())
            }
            _ => Err(self.over()),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), BundleError> {
        self.charge(buf.len() as u64)?;
        self.inner.read_exact(buf).map_err(corrupt)
    }

    /// Reads `len` bytes of entry data and the padding to the next block, already charged for;
    /// memory grows only as data really arrives.
    fn read_data(&mut self, len: u64) -> Result<Vec<u8>, BundleError> {
        let padded = len.div_ceil(BLOCK as u64) * BLOCK as u64;
        self.charge(padded)?;
        let mut data = Vec::new();
        (&mut self.inner).take(len).read_to_end(&mut data).map_err(corrupt)?;
        if (data.len() as u64) < len {
            return fail("corrupt or truncated archive: an entry's data ends early");
        }
        let mut pad = [0u8; BLOCK];
        let pad_len = (padded - len) as usize;
        self.inner.read_exact(&mut pad[..pad_len]).map_err(corrupt)?;
        Ok(data)
    }

    /// After the end-of-archive marker: the rest of the stream must be zeros (the writer's
    /// padding), and is charged like everything else. Data hidden there is refused.
    fn finish(&mut self) -> Result<(), BundleError> {
        let mut buf = [0u8; 8 * BLOCK];
        loop {
            // One byte past the budget tells "ends exactly at the limit" from "goes on".
            let room = (self.limit - self.used).min(buf.len() as u64 - 1) as usize + 1;
            let n = match self.inner.read(&mut buf[..room]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(e)),
            };
            if n == 0 {
                return Ok(());
            }
            self.charge(n as u64)?;
            if buf[..n].iter().any(|&b| b != 0) {
                return fail("data after the end-of-archive marker: refused");
            }
        }
    }
}

fn corrupt(e: std::io::Error) -> BundleError {
    BundleError::Refused(format!("corrupt or truncated archive: {e}"))
}

/// A numeric header field: octal digits (space or NUL ended), or GNU base-256 when the top bit
/// of the first byte is set. `None` for anything else, a negative number, or an overflow.
fn numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        return field[1..]
            .iter()
            .try_fold(u64::from(field[0] & 0x3f), |n, &b| n.checked_mul(256)?.checked_add(b.into()));
    }
    let digits = field.iter().skip_while(|&&b| b == b' ').take_while(|&&b| b != 0 && b != b' ');
    let mut n = 0u64;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        n = n.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// The checksum rule: the header's bytes summed with the checksum field read as spaces
/// (unsigned, or signed as some old writers did).
fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Some(stored) = numeric(&h[148..156]) else { return false };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// A NUL-terminated text field.
fn text_field(field: &[u8]) -> &[u8] {
    field.split(|&b| b == 0).next().unwrap_or_default()
}

/// The entry's own name: ustar's `prefix/name`, else the name field (v7 and GNU headers).
fn header_name(h: &[u8; BLOCK]) -> Vec<u8> {
    let name = text_field(&h[..100]);
    let ustar = &h[257..263] == b"ustar\0";
    let prefix = if ustar { text_field(&h[345..500]) } else { &[] };
    if prefix.is_empty() { name.to_vec() } else { [prefix, b"/", name].concat() }
}

/// What a type flag that is neither a file nor a directory means, for the refusal.
fn refused_kind(flag: u8) -> String {
    match flag {
        b'1' => "hard link".into(),
        b'2' => "symbolic link".into(),
        b'3' => "character device".into(),
        b'4' => "block device".into(),
        b'6' => "fifo".into(),
        b'7' => "contiguous file".into(),
        b'K' => "GNU long link name (links are refused)".into(),
        b'S' => "GNU sparse file".into(),
        b'V' => "volume label".into(),
        b'M' => "multi-volume continuation".into(),
        b'D' => "GNU dump directory".into(),
        other => format!("entry of type {:?}", char::from(other)),
    }
}

/// What a PAX extended header says about the next entry.
#[derive(Default)]
struct Pax {
    path: Option<String>,
    size: Option<u64>,
}

/// Parses PAX records (`LEN KEY=VALUE\n`, LEN counting the whole record). `path` and `size`
/// are honoured (for the next entry, when `local`); sparse-file keys are refused; the rest
/// (times, owners, charset) does not matter to a bundle and is ignored.
fn parse_pax(data: &[u8], local: bool) -> Result<Pax, BundleError> {
    let bad = |why: &str| BundleError::Refused(format!("corrupt PAX header: {why}"));
    let mut pax = Pax::default();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(|| bad("a record without a length"))?;
        let len = std::str::from_utf8(&rest[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| bad("a record length that is not a number"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad("a record length that does not fit"));
        }
        let record = &rest[space + 1..len - 1];
        rest = &rest[len..];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(|| bad("a record without '='"))?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| bad("a key that is not UTF-8"))?;
        let value = &record[eq + 1..];
        if key.starts_with("GNU.sparse.") {
            return fail("a GNU sparse file (PAX GNU.sparse.*): refused; a bundle holds only regular files");
        }
        if !local {
            continue;
        }
        match key {
            "path" => {
                let path = std::str::from_utf8(value).map_err(|_| bad("a path that is not UTF-8"))?;
                pax.path = (!path.is_empty()).then(|| path.to_string());
            }
            "size" => {
                let size = std::str::from_utf8(value).ok().and_then(|s| s.parse::<u64>().ok());
                pax.size = Some(size.ok_or_else(|| bad("a size that is not a number"))?);
            }
            _ => {}
        }
    }
    Ok(pax)
}

/// Reads every regular file of an archive into memory, refusing anything hostile before it is
/// used: an archive file over `max_archive_bytes` or not a regular file; more tar headers,
/// larger files or more decompressed bytes than the limits; a GNU long name over
/// [`MAX_LONG_NAME`] or a PAX header over [`MAX_PAX_HEADER`] (refused from the size they
/// declare, before they are read); links, devices, fifos, sparse files and every type that is
/// not a regular file or directory; `..` or absolute paths; duplicates; a bad header checksum;
/// data after the end of the archive or after the gzip stream; a truncated or corrupt gzip.
///
/// # Errors
/// Any of the above, naming the entry or the limit.
pub fn read_archive(path: &Path, limits: Limits) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let at = |e: BundleError| BundleError::Refused(format!("{}: {e}", path.display()));
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())
        .map_err(|e| BundleError::Refused(format!("{}: {}", path.display(), io_err(e))))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| BundleError::Refused(format!("{}: {}", path.display(), io_err(e))))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return fail(format!("{} is a {}, not a regular file: refused", path.display(), kind_name(kind)));
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size > limits.max_archive_bytes {
        return fail(format!(
            "{} is {size} bytes, over the limit of {} for an archive: refused",
            path.display(),
            limits.max_archive_bytes
        ));
    }
    // `take`: a file that grows after fstat is still read only up to the limit.
    read_gzip(BufReader::new(File::from(fd).take(limits.max_archive_bytes)), limits).map_err(at)
}

/// As [`read_archive`], from the bytes of a `.tar.gz` already in memory (the fuzz targets and
/// their replay test use it).
///
/// # Errors
/// As [`read_archive`].
pub fn read_archive_bytes(bytes: &[u8], limits: Limits) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    if bytes.len() as u64 > limits.max_archive_bytes {
        return fail(format!(
            "{} bytes, over the limit of {} for an archive: refused",
            bytes.len(),
            limits.max_archive_bytes
        ));
    }
    read_gzip(bytes, limits)
}

/// The tar reader alone, over an uncompressed archive in memory, within the same limits.
///
/// # Errors
/// As [`read_archive`], less what concerns gzip.
pub fn read_tar_bytes(bytes: &[u8], limits: Limits) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let mut stream = Budgeted { inner: bytes, used: 0, limit: limits.max_total_bytes };
    let files = read_tar(&mut stream, limits)?;
    stream.finish()?;
    Ok(files)
}

fn read_gzip<R: BufRead>(raw: R, limits: Limits) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let mut stream = Budgeted { inner: flate2::bufread::GzDecoder::new(raw), used: 0, limit: limits.max_total_bytes };
    let files = read_tar(&mut stream, limits)?;
    stream.finish()?;
    // A second gzip member or appended bytes would be data nobody checks.
    let mut raw = stream.inner.into_inner();
    if !raw.fill_buf().map_err(corrupt)?.is_empty() {
        return fail("data after the end of the gzip stream: refused".to_string());
    }
    Ok(files)
}

/// A file or directory header and what came before it for it.
struct Entry<'a> {
    header: &'a [u8; BLOCK],
    /// Its position among the headers, for messages.
    number: usize,
    /// The size its header declares (a PAX size wins).
    declared: u64,
    long_name: Option<String>,
}

/// A regular file (read into `files`) or a directory (checked, then skipped): named by a PAX
/// path, a GNU long name or the header, never escaping the bundle, never twice.
fn file_entry<R: Read>(
    stream: &mut Budgeted<R>,
    e: Entry<'_>,
    pax: Pax,
    limits: Limits,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), BundleError> {
    let flag = e.header[156];
    if pax.path.is_some() && e.long_name.is_some() {
        return fail("corrupt archive: a PAX path and a GNU long name for one entry");
    }
    let raw = match pax.path.or(e.long_name) {
        Some(name) => name,
        None => String::from_utf8(header_name(e.header))
            .map_err(|err| BundleError::Refused(format!("entry {}: a name that is not UTF-8: {err}", e.number)))?,
    };
    let size = pax.size.unwrap_or(e.declared);
    let top = Path::new(&raw).components().all(|c| c == Component::CurDir);
    if flag == b'5' && size != 0 {
        return fail(format!("corrupt archive: directory entry {raw:?} carries data"));
    }
    // `tar -C DIR .` starts with the directory `./` itself.
    if flag == b'5' && top && !raw.is_empty() {
        return Ok(());
    }
    let Some(name) = safe_path(Path::new(&raw)).filter(|_| !raw.contains('\0')) else {
        return fail(format!("entry {raw:?} escapes the bundle (absolute path or ..): refused"));
    };
    if flag == b'5' {
        return Ok(());
    }
    if raw.ends_with('/') {
        return fail(format!("entry {raw:?} is a file named like a directory: refused"));
    }
    if size > limits.max_entry_bytes {
        return fail(format!(
            "entry {name:?} declares {size} bytes (limit {} for one file): refused",
            limits.max_entry_bytes
        ));
    }
    let bytes = stream.read_data(size)?;
    if files.insert(name.clone(), bytes).is_some() {
        return fail(format!("entry {name:?} appears twice: refused"));
    }
    Ok(())
}

/// The tar format over `stream`, up to and including the end-of-archive marker.
fn read_tar<R: Read>(stream: &mut Budgeted<R>, limits: Limits) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let mut files = BTreeMap::new();
    let mut headers = 0usize;
    let mut long_name: Option<String> = None;
    let mut pax: Option<Pax> = None;
    loop {
        let mut h = [0u8; BLOCK];
        stream.read_exact(&mut h)?;
        if h.iter().all(|&b| b == 0) {
            if long_name.is_some() || pax.is_some() {
                return fail("corrupt archive: an extension header with no entry after it");
            }
            return Ok(files);
        }
        headers += 1;
        if headers > limits.max_entries {
            return fail(format!("more than {} tar entries (headers of any kind): refused", limits.max_entries));
        }
        if !checksum_ok(&h) {
            return fail(format!("corrupt archive: header {headers} has a bad checksum"));
        }
        let flag = h[156];
        let declared = numeric(&h[124..136])
            .ok_or_else(|| BundleError::Refused(format!("corrupt archive: header {headers} has an unreadable size")))?;
        match flag {
            b'L' => {
                if declared > MAX_LONG_NAME {
                    return fail(format!(
                        "a GNU long name (././@LongLink) of {declared} bytes, over the limit of {MAX_LONG_NAME}: refused"
                    ));
                }
                if long_name.is_some() {
                    return fail("corrupt archive: two GNU long names for one entry");
                }
                let data = stream.read_data(declared)?;
                let name = std::str::from_utf8(text_field(&data))
                    .map_err(|_| BundleError::Refused("a GNU long name that is not UTF-8: refused".into()))?;
                long_name = Some(name.to_string());
            }
            b'x' | b'g' => {
                if declared > MAX_PAX_HEADER {
                    return fail(format!(
                        "a PAX header of {declared} bytes, over the limit of {MAX_PAX_HEADER}: refused"
                    ));
                }
                let data = stream.read_data(declared)?;
                let parsed = parse_pax(&data, flag == b'x')?;
                if flag == b'x' {
                    if pax.is_some() {
                        return fail("corrupt archive: two PAX headers for one entry");
                    }
                    pax = Some(parsed);
                }
            }
            b'0' | b'\0' | b'5' => {
                let entry = Entry { header: &h, number: headers, declared, long_name: long_name.take() };
                file_entry(stream, entry, pax.take().unwrap_or_default(), limits, &mut files)?;
            }
            other => {
                let name = pax
                    .and_then(|p| p.path)
                    .or(long_name)
                    .unwrap_or_else(|| String::from_utf8_lossy(&header_name(&h)).into_owned());
                return fail(format!(
                    "entry {name:?} is a {}, not a regular file or directory: refused",
                    refused_kind(other)
                ));
            }
        }
    }
}
