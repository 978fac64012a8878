//! Bencode (BEP 3), strict: the decoder accepts only the canonical
//! encoding, so a value has exactly one byte form and the info hash of a
//! torrent or of metadata fetched from a peer is the hash of the bytes that
//! arrived, never of a re-encoding.
//!
//! Refused: integers with leading zeros, `-0`, a `+` sign, or out of `i64`;
//! string lengths with leading zeros; dictionary keys unsorted or repeated;
//! nesting deeper than [`MAX_DEPTH`]; bytes after the value ([`decode`];
//! [`decode_prefix`] returns where the value ended instead). Every value
//! borrows from the input and a [`Dict`] keeps its raw byte span, so
//! memory is bounded by the input length (each element takes at least two
//! input bytes). The decoder never panics on any input.

use std::fmt;

/// Deepest nesting of lists and dictionaries accepted (real torrents use
/// about five levels; the limit keeps recursion bounded).
pub const MAX_DEPTH: usize = 32;

/// A decoded value, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Dict<'a>),
}

/// A dictionary: entries in key order, and (when decoded) the exact bytes
/// it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    pub entries: Vec<(&'a [u8], Value<'a>)>,
    /// The input bytes from `d` to `e`; empty for a dictionary built in
    /// code.
    pub raw: &'a [u8],
}

impl<'a> Dict<'a> {
    /// The value under `key` (entries are sorted: binary search).
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries
            .binary_search_by(|(k, _)| (*k).cmp(key))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    pub fn int(&self, key: &[u8]) -> Option<i64> {
        match self.get(key)? {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn bytes(&self, key: &[u8]) -> Option<&'a [u8]> {
        match self.get(key)? {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn dict(&self, key: &[u8]) -> Option<&Dict<'a>> {
        match self.get(key)? {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    pub fn list(&self, key: &[u8]) -> Option<&[Value<'a>]> {
        match self.get(key)? {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// A dictionary built in code from entries in any order (sorted here;
    /// a repeated key is a bug of the caller and keeps the first).
    pub fn from_entries(mut entries: Vec<(&'a [u8], Value<'a>)>) -> Dict<'a> {
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Dict { entries, raw: &[] }
    }
}

/// Why bytes are not canonical bencode. Carries no input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    /// A byte that starts no value, or a malformed number.
    Syntax(usize),
    LeadingZero(usize),
    Overflow(usize),
    /// A key not greater than the one before it.
    KeyOrder(usize),
    TooDeep,
    /// Bytes after the value.
    Trailing(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "bencode truncated"),
            Error::Syntax(at) => write!(f, "bencode syntax error at byte {at}"),
            Error::LeadingZero(at) => write!(f, "bencode number with a leading zero at byte {at}"),
            Error::Overflow(at) => write!(f, "bencode number too large at byte {at}"),
            Error::KeyOrder(at) => write!(f, "bencode keys unsorted or repeated at byte {at}"),
            Error::TooDeep => write!(f, "bencode nested deeper than {MAX_DEPTH} levels"),
            Error::Trailing(at) => write!(f, "bytes after the bencoded value at byte {at}"),
        }
    }
}

impl std::error::Error for Error {}

/// Decodes `buf`, which must hold exactly one value.
pub fn decode(buf: &[u8]) -> Result<Value<'_>, Error> {
    let (v, used) = decode_prefix(buf)?;
    if used != buf.len() {
        return Err(Error::Trailing(used));
    }
    Ok(v)
}

/// Decodes the value at the start of `buf`: the value and its length in
/// bytes (what follows is the caller's, as in a `ut_metadata` message).
pub fn decode_prefix(buf: &[u8]) -> Result<(Value<'_>, usize), Error> {
    let mut d = Decoder { buf, pos: 0 };
    let v = d.value(0)?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, Error> {
        self.buf.get(self.pos).copied().ok_or(Error::Truncated)
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.number(b'e', true)?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            b'l' | b'd' if depth >= MAX_DEPTH => Err(Error::TooDeep),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                let start = self.pos;
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                while self.peek()? != b'e' {
                    let at = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(Error::Syntax(at));
                    }
                    let key = self.bytes()?;
                    if entries.last().is_some_and(|(k, _)| *k >= key) {
                        return Err(Error::KeyOrder(at));
                    }
                    let v = self.value(depth + 1)?;
                    entries.push((key, v));
                }
                self.pos += 1;
                Ok(Value::Dict(Dict {
                    entries,
                    raw: &self.buf[start..self.pos],
                }))
            }
            _ => Err(Error::Syntax(self.pos)),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let len = self.number(b':', false)?;
        let len = usize::try_from(len).map_err(|_| Error::Overflow(self.pos))?;
        let end = self.pos.checked_add(len).ok_or(Error::Overflow(self.pos))?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Digits up to `end` (a `-` first when `signed`), canonical only.
    fn number(&mut self, end: u8, signed: bool) -> Result<i64, Error> {
        let start = self.pos;
        let negative = signed && self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_at = self.pos;
        let mut n: i64 = 0;
        loop {
            let c = self.peek()?;
            if c == end {
                break;
            }
            if !c.is_ascii_digit() {
                return Err(Error::Syntax(self.pos));
            }
            let digit = i64::from(c - b'0');
            n = n
                .checked_mul(10)
                .and_then(|n| {
                    if negative {
                        n.checked_sub(digit)
                    } else {
                        n.checked_add(digit)
                    }
                })
                .ok_or(Error::Overflow(start))?;
            self.pos += 1;
        }
        let digits = self.pos - digits_at;
        if digits == 0 {
            return Err(Error::Syntax(start));
        }
        // "0" alone is the only number starting with 0, and never negative.
        if self.buf[digits_at] == b'0' && (digits > 1 || negative) {
            return Err(Error::LeadingZero(start));
        }
        self.pos += 1;
        Ok(n)
    }
}

/// Appends the canonical encoding of `v` (dictionary entries are written in
/// the order they are stored, which [`Dict::from_entries`] and the decoder
/// keep sorted).
pub fn encode(v: &Value<'_>, out: &mut Vec<u8>) {
    match v {
        Value::Int(n) => {
            out.push(b'i');
            out.extend_from_slice(n.to_string().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                encode(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(d) => {
            out.push(b'd');
            for (k, v) in &d.entries {
                encode_bytes(k, out);
                encode(v, out);
            }
            out.push(b'e');
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_values_round_trip() {
        let input = b"d3:agei-42e4:listl1:ai0ee4:named1:xi1eee";
        let v = decode(input).unwrap();
        let Value::Dict(d) = &v else { panic!() };
        assert_eq!(d.raw, input);
        assert_eq!(d.int(b"age"), Some(-42));
        assert_eq!(d.list(b"list").unwrap().len(), 2);
        assert_eq!(d.dict(b"name").unwrap().raw, b"d1:xi1ee");
        assert_eq!(d.bytes(b"missing"), None);
        let mut out = Vec::new();
        encode(&v, &mut out);
        assert_eq!(out, input);
        assert_eq!(decode(b"i0e"), Ok(Value::Int(0)));
        assert_eq!(decode(b"0:"), Ok(Value::Bytes(b"")));
        assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
    }

    #[test]
    fn non_canonical_input_is_refused() {
        for (bad, why) in [
            (&b"i03e"[..], "leading zero"),
            (b"i-0e", "negative zero"),
            (b"i+1e", "plus sign"),
            (b"ie", "no digits"),
            (b"03:abc", "length with a leading zero"),
            (b"d1:bi1e1:ai1ee", "unsorted keys"),
            (b"d1:ai1e1:ai1ee", "repeated key"),
            (b"di1ei1ee", "integer key"),
            (b"i1ei2e", "trailing bytes"),
            (b"5:abc", "short string"),
            (b"l", "unterminated list"),
            (b"i9223372036854775808e", "overflow"),
            (b"99999999999999999999:", "length overflow"),
            (b"x", "no value"),
            (b"", "empty"),
        ] {
            assert!(decode(bad).is_err(), "{why} accepted");
        }
        let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert_eq!(decode(&deep), Err(Error::TooDeep));
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn a_prefix_reports_its_length_and_every_cut_is_truncated() {
        let (v, used) = decode_prefix(b"d1:ai1eeXYZ").unwrap();
        assert_eq!(used, 8);
        assert!(matches!(v, Value::Dict(_)));
        let input = b"d4:infod6:lengthi5e4:name3:abce1:xl0:i7eee";
        for cut in 0..input.len() {
            assert_eq!(decode(&input[..cut]), Err(Error::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn built_dicts_are_sorted() {
        let d = Dict::from_entries(vec![(b"b", Value::Int(1)), (b"a", Value::Bytes(b"x"))]);
        let mut out = Vec::new();
        encode(&Value::Dict(d), &mut out);
        assert_eq!(out, b"d1:a1:x1:bi1ee");
    }
}
