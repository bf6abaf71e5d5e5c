//! A small, strict CBOR layer for the deterministic encodings of Sealbridge (RFC 8949 §4.2.1,
//! "Core Deterministic Encoding Requirements").
//!
//! Why not `ciborium`/`coset` for untrusted input: their decoders accept non-minimal integer
//! and length encodings and indefinite-length items, so two different byte strings could decode
//! to the same envelope; with this decoder every accepted item has exactly one encoding.
//!
//! - [`Encoder`] always writes the shortest argument encoding and definite lengths. Callers
//!   write map keys in deterministic order (bytewise lexicographic order of their encodings,
//!   RFC 8949 §4.2.1), which for the small integer labels used here means: `0..=23`, then
//!   larger unsigned, then `-1, -2, …` by increasing magnitude.
//! - [`Decoder`] is a cursor that rejects: non-minimal arguments (§4.2.1), indefinite lengths
//!   (§3.2.1), reserved additional information 28–30 (§3), all major-type-7 items (floats,
//!   simple values: nothing in our formats uses them), invalid UTF-8 in text strings (§3.1),
//!   lengths longer than the remaining input, nesting deeper than [`MAX_DEPTH`]; and, through
//!   [`Decoder::finish`], trailing bytes. It never panics and never allocates.

use crate::Error;

/// Maximum nesting depth accepted by [`Decoder::skip`].
pub const MAX_DEPTH: usize = 16;

/// CBOR major types (RFC 8949 §3.1).
pub mod major {
    /// Unsigned integer.
    pub const UINT: u8 = 0;
    /// Negative integer.
    pub const NINT: u8 = 1;
    /// Byte string.
    pub const BYTES: u8 = 2;
    /// Text string.
    pub const TEXT: u8 = 3;
    /// Array.
    pub const ARRAY: u8 = 4;
    /// Map.
    pub const MAP: u8 = 5;
    /// Tag.
    pub const TAG: u8 = 6;
    /// Floats and simple values (rejected by the decoder).
    pub const SIMPLE: u8 = 7;
}

/// Deterministic CBOR writer.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with reserved capacity.
    #[must_use]
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            buf: Vec::with_capacity(cap),
        }
    }

    /// Item head with the shortest argument encoding (RFC 8949 §4.2.1).
    fn head(&mut self, major: u8, arg: u64) -> &mut Self {
        let m = major << 5;
        if arg < 24 {
            self.buf.push(m | arg as u8);
        } else if let Ok(a) = u8::try_from(arg) {
            self.buf.extend_from_slice(&[m | 24, a]);
        } else if let Ok(a) = u16::try_from(arg) {
            self.buf.push(m | 25);
            self.buf.extend_from_slice(&a.to_be_bytes());
        } else if let Ok(a) = u32::try_from(arg) {
            self.buf.push(m | 26);
            self.buf.extend_from_slice(&a.to_be_bytes());
        } else {
            self.buf.push(m | 27);
            self.buf.extend_from_slice(&arg.to_be_bytes());
        }
        self
    }

    /// Unsigned integer (major 0).
    pub fn uint(&mut self, v: u64) -> &mut Self {
        self.head(major::UINT, v)
    }

    /// Signed integer (major 0 or 1).
    pub fn int(&mut self, v: i64) -> &mut Self {
        if v >= 0 {
            self.head(major::UINT, v.unsigned_abs())
        } else {
            // -1 - n encodes n; for v < 0, n = |v| - 1 = !v as u64.
            self.head(major::NINT, !v as u64)
        }
    }

    /// Byte string (major 2).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(major::BYTES, b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }

    /// Text string (major 3).
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.head(major::TEXT, s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// Text string (major 3) from bytes the caller knows to be UTF-8, such as the ASCII
    /// purpose labels of [`crate::contexts`] (their ASCII-ness is a tested invariant).
    pub fn text_bytes(&mut self, utf8: &[u8]) -> &mut Self {
        self.head(major::TEXT, utf8.len() as u64);
        self.buf.extend_from_slice(utf8);
        self
    }

    /// Array header of `len` items (major 4); the items follow.
    pub fn array(&mut self, len: usize) -> &mut Self {
        self.head(major::ARRAY, len as u64)
    }

    /// Map header of `len` pairs (major 5); keys and values follow, keys in deterministic order.
    pub fn map(&mut self, len: usize) -> &mut Self {
        self.head(major::MAP, len as u64)
    }

    /// Tag (major 6); the tagged item follows.
    pub fn tag(&mut self, tag: u64) -> &mut Self {
        self.head(major::TAG, tag)
    }

    /// Appends an already-encoded item verbatim.
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(encoded);
        self
    }

    /// Bytes written so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoding.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Strict deterministic-CBOR reader over untrusted bytes.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

fn err(what: &'static str) -> Error {
    Error::Cbor(what)
}

impl<'a> Decoder<'a> {
    /// A decoder positioned at the start of `input`.
    #[must_use]
    pub fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    /// Bytes not yet consumed.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    /// Current offset into the input.
    #[must_use]
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| err("length overflow"))?;
        let s = self
            .input
            .get(self.pos..end)
            .ok_or_else(|| err("unexpected end of input"))?;
        self.pos = end;
        Ok(s)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let s = self.take(N)?;
        <[u8; N]>::try_from(s).map_err(|_| err("unexpected end of input"))
    }

    /// The major type of the next item, without consuming it.
    ///
    /// # Errors
    /// At end of input.
    pub fn peek_major(&self) -> Result<u8, Error> {
        self.input
            .get(self.pos)
            .map(|b| b >> 5)
            .ok_or_else(|| err("unexpected end of input"))
    }

    /// Reads an item head: (major type, argument). Enforces shortest-form arguments and
    /// rejects indefinite lengths, reserved values and major type 7.
    fn head(&mut self) -> Result<(u8, u64), Error> {
        let [ib] = self.take_array::<1>()?;
        let major = ib >> 5;
        let ai = ib & 0x1f;
        if major == major::SIMPLE {
            return Err(err("floats and simple values are not accepted"));
        }
        let arg = match ai {
            0..=23 => u64::from(ai),
            24 => {
                let v = u64::from(u8::from_be_bytes(self.take_array()?));
                if v < 24 {
                    return Err(err("non-minimal integer encoding"));
                }
                v
            }
            25 => {
                let v = u64::from(u16::from_be_bytes(self.take_array()?));
                if v <= 0xff {
                    return Err(err("non-minimal integer encoding"));
                }
                v
            }
            26 => {
                let v = u64::from(u32::from_be_bytes(self.take_array()?));
                if v <= 0xffff {
                    return Err(err("non-minimal integer encoding"));
                }
                v
            }
            27 => {
                let v = u64::from_be_bytes(self.take_array()?);
                if v <= 0xffff_ffff {
                    return Err(err("non-minimal integer encoding"));
                }
                v
            }
            31 => return Err(err("indefinite-length items are not accepted")),
            _ => return Err(err("reserved additional information")),
        };
        Ok((major, arg))
    }

    fn expect(&mut self, want: u8, what: &'static str) -> Result<u64, Error> {
        let (major, arg) = self.head()?;
        if major == want {
            Ok(arg)
        } else {
            Err(err(what))
        }
    }

    /// A length argument, bounded by the remaining input (each element takes at least one
    /// byte), so callers may use it to size loops safely.
    fn len_arg(&self, arg: u64) -> Result<usize, Error> {
        usize::try_from(arg)
            .ok()
            .filter(|n| *n <= self.remaining())
            .ok_or_else(|| err("length exceeds input"))
    }

    /// Unsigned integer (major 0).
    ///
    /// # Errors
    /// Wrong type or bad encoding.
    pub fn uint(&mut self) -> Result<u64, Error> {
        self.expect(major::UINT, "expected unsigned integer")
    }

    /// Signed integer that fits in `i64` (major 0 or 1).
    ///
    /// # Errors
    /// Wrong type, bad encoding, or out of `i64` range.
    pub fn int(&mut self) -> Result<i64, Error> {
        Ok(self.int_with_raw()?.0)
    }

    /// Signed integer, together with its exact encoding (for map-key order checks).
    ///
    /// # Errors
    /// As [`int`](Self::int).
    pub fn int_with_raw(&mut self) -> Result<(i64, &'a [u8]), Error> {
        let start = self.pos;
        let (major, arg) = self.head()?;
        let n = i64::try_from(arg).map_err(|_| err("integer out of range"))?;
        let v = match major {
            major::UINT => n,
            major::NINT => -1 - n,
            _ => return Err(err("expected integer")),
        };
        let raw = self
            .input
            .get(start..self.pos)
            .ok_or_else(|| err("internal"))?;
        Ok((v, raw))
    }

    /// Byte string (major 2), borrowed from the input.
    ///
    /// # Errors
    /// Wrong type, bad encoding, or truncated.
    pub fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let arg = self.expect(major::BYTES, "expected byte string")?;
        let n = self.len_arg(arg)?;
        self.take(n)
    }

    /// Byte string of exactly `N` bytes.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes), or wrong length.
    pub fn bytes_fixed<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let b = self.bytes()?;
        <[u8; N]>::try_from(b).map_err(|_| err("byte string has the wrong length"))
    }

    /// Text string (major 3), UTF-8 checked.
    ///
    /// # Errors
    /// Wrong type, bad encoding, truncated, or invalid UTF-8.
    pub fn text(&mut self) -> Result<&'a str, Error> {
        let arg = self.expect(major::TEXT, "expected text string")?;
        let n = self.len_arg(arg)?;
        core::str::from_utf8(self.take(n)?).map_err(|_| err("invalid UTF-8"))
    }

    /// Array header; returns the item count (bounded by the remaining input).
    ///
    /// # Errors
    /// Wrong type or bad encoding.
    pub fn array(&mut self) -> Result<usize, Error> {
        let arg = self.expect(major::ARRAY, "expected array")?;
        self.len_arg(arg)
    }

    /// Array header that must announce exactly `len` items.
    ///
    /// # Errors
    /// Wrong type, bad encoding, or another length.
    pub fn array_of(&mut self, len: usize) -> Result<(), Error> {
        if self.array()? == len {
            Ok(())
        } else {
            Err(err("array has the wrong number of items"))
        }
    }

    /// Map header; returns the pair count (bounded by the remaining input).
    ///
    /// # Errors
    /// Wrong type or bad encoding.
    pub fn map(&mut self) -> Result<usize, Error> {
        let arg = self.expect(major::MAP, "expected map")?;
        self.len_arg(arg)
    }

    /// Tag (major 6); the tagged item follows.
    ///
    /// # Errors
    /// Wrong type or bad encoding.
    pub fn tag(&mut self) -> Result<u64, Error> {
        self.expect(major::TAG, "expected tag")
    }

    /// Skips one complete item (with the same strictness, up to [`MAX_DEPTH`] nesting) and
    /// returns its exact encoding. Key order inside nested maps is not checked.
    ///
    /// # Errors
    /// Any malformation inside the item.
    pub fn skip(&mut self) -> Result<&'a [u8], Error> {
        let start = self.pos;
        self.skip_at(0)?;
        self.input
            .get(start..self.pos)
            .ok_or_else(|| err("internal"))
    }

    fn skip_at(&mut self, depth: usize) -> Result<(), Error> {
        if depth >= MAX_DEPTH {
            return Err(err("nesting too deep"));
        }
        let (major, arg) = self.head()?;
        match major {
            major::UINT | major::NINT => Ok(()),
            major::BYTES => {
                let n = self.len_arg(arg)?;
                self.take(n).map(|_| ())
            }
            major::TEXT => {
                let n = self.len_arg(arg)?;
                core::str::from_utf8(self.take(n)?)
                    .map(|_| ())
                    .map_err(|_| err("invalid UTF-8"))
            }
            major::ARRAY => {
                for _ in 0..self.len_arg(arg)? {
                    self.skip_at(depth + 1)?;
                }
                Ok(())
            }
            major::MAP => {
                for _ in 0..self.len_arg(arg)? {
                    self.skip_at(depth + 1)?;
                    self.skip_at(depth + 1)?;
                }
                Ok(())
            }
            major::TAG => self.skip_at(depth + 1),
            _ => Err(err("floats and simple values are not accepted")),
        }
    }

    /// Succeeds only if the whole input was consumed.
    ///
    /// # Errors
    /// If bytes remain.
    pub fn finish(self) -> Result<(), Error> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(err("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests;
