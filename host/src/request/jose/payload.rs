//! The payload as a JWS signing input needs it: held (bounded by the payload limit) or
//! streamed (a detached file of any size), base64url-encoded on the fly when `b64` is true.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use super::super::input::{self, Input};
use super::{Context, RequestError};
use crate::alg::SignatureAlgorithm;
use crate::jose::jws;

/// Base64url (no padding) of everything `inner` yields, as a reader: a detached payload of any
/// size enters the signing input encoded without ever being held whole.
struct B64Reader<R> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    carry: Vec<u8>,
    done: bool,
}

impl<R: Read> B64Reader<R> {
    fn new(inner: R) -> Self {
        B64Reader { inner, out: Vec::new(), pos: 0, carry: Vec::new(), done: false }
    }

    fn refill(&mut self) -> std::io::Result<()> {
        let mut buf = vec![0u8; 48 << 10];
        while !self.done {
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                self.done = true;
                self.out = jws::b64(&self.carry).into_bytes();
                self.carry.clear();
                break;
            }
            self.carry.extend_from_slice(&buf[..n]);
            let whole = self.carry.len() / 3 * 3;
            if whole > 0 {
                self.out = jws::b64(&self.carry[..whole]).into_bytes();
                self.carry.drain(..whole);
                break;
            }
        }
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for B64Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A payload read whole within the payload limit (one that goes into the JWS, or one signed
/// by several signers from a stream that cannot be read twice).
pub(super) fn whole(ctx: &Context<'_>, input: Input<'_>) -> Result<Vec<u8>, RequestError> {
    let limit = ctx.config.max_payload;
    let over = |n: usize| {
        RequestError::Invalid(format!(
            "the payload of {n} bytes is over the limit of {limit} bytes ([dsse] max_payload_mib)"
        ))
    };
    match input {
        Input::File(path) => crate::fsio::read_bounded(path, limit as u64, "JWS payload")
            .map_err(|e| RequestError::Invalid(format!("{e} (the limit is [dsse] max_payload_mib)"))),
        Input::Bytes(b) if b.len() > limit => Err(over(b.len())),
        Input::Bytes(b) => Ok(b.to_vec()),
        Input::Stream(r) => {
            let mut out = Vec::new();
            r.take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| RequestError::Invalid(format!("reading the payload: {e}")))?;
            if out.len() > limit {
                return Err(over(out.len()));
            }
            Ok(out)
        }
        Input::Digest(_) => Err(RequestError::Invalid("a JWS signs its payload: give the bytes, not a digest".into())),
    }
}

/// The payload as the signing input needs it, held or streamed.
pub(super) enum Source<'i, 'h> {
    /// In memory: the payload (signing), or the JWS's own encoded payload part (verifying).
    Held(Cow<'h, [u8]>),
    File(&'i std::path::Path),
    Stream(&'i mut dyn Read),
}

impl<'i> Source<'i, '_> {
    /// A detached payload may stay streamed; anything else, or a stream read by several
    /// signatures, is read whole.
    pub(super) fn new(ctx: &Context<'_>, input: Input<'i>, streamed: bool, uses: usize) -> Result<Self, RequestError> {
        Ok(match input {
            Input::File(p) if streamed => Source::File(p),
            Input::Stream(r) if streamed && uses == 1 => Source::Stream(r),
            other => Source::Held(Cow::Owned(whole(ctx, other)?)),
        })
    }

    /// The signing input of one signature, `prefix || payload part`, prepared for `alg` (hashed
    /// through a provider, streamed; or whole for EdDSA within the payload limit).
    pub(super) fn prepare(
        &mut self,
        ctx: &Context<'_>,
        alg: &SignatureAlgorithm,
        prefix: &[u8],
        b64: bool,
        audited: bool,
    ) -> Result<input::Prepared, RequestError> {
        match self {
            // A prehashing algorithm reads the held payload through the hash, as a stream: no
            // copy of it (or of its encoding) is made.
            Source::Held(payload) if alg.hash.is_some() => {
                streamed(ctx, alg, prefix, b64, Cursor::new(&payload[..]), audited)
            }
            Source::Held(payload) => {
                let mut signing = prefix.to_vec();
                if b64 {
                    signing.extend_from_slice(jws::b64(payload).as_bytes());
                } else {
                    signing.extend_from_slice(payload);
                }
                input::prepare(ctx, alg, Input::Bytes(&signing), audited)
            }
            Source::File(path) => {
                let file = crate::fsio::open_regular(path, "payload")?;
                streamed(ctx, alg, prefix, b64, file, audited)
            }
            Source::Stream(reader) => streamed(ctx, alg, prefix, b64, reader, audited),
        }
    }
}

fn streamed(
    ctx: &Context<'_>,
    alg: &SignatureAlgorithm,
    prefix: &[u8],
    b64: bool,
    payload: impl Read,
    audited: bool,
) -> Result<input::Prepared, RequestError> {
    let mut chained: Box<dyn Read> = if b64 {
        Box::new(Cursor::new(prefix).chain(B64Reader::new(payload)))
    } else {
        Box::new(Cursor::new(prefix).chain(payload))
    };
    input::prepare(ctx, alg, Input::Stream(&mut chained), audited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_reader_matches_the_one_shot_encoding() {
        for len in [0usize, 1, 2, 3, 4, 5, 100, 49_151, 49_152, 49_153, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut out = String::new();
            B64Reader::new(Cursor::new(&data)).read_to_string(&mut out).unwrap();
            assert_eq!(out, jws::b64(&data), "{len}");
        }
    }
}
