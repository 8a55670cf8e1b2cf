//! Order-preserving key encodings: byte order of an encoded key is the order of its parts.
//!
//! sled sorts keys as byte strings, so every part of a composite key is encoded so
//! that comparing bytes compares values, and so that no encoding is a prefix of
//! another (a scan for `form = "a"` must not see `form = "ab"`):
//!
//! - text: each byte as is, except `0x00` written as `0x00 0xFF`; then `0x00 0x01`
//!   as terminator. The terminator sorts before any continuation, so `"a" < "ab"`
//!   and `"a" < "a\0"`.
//! - `u64`: 8 bytes big-endian.
//! - `i64`: the sign bit flipped, then 8 bytes big-endian, so negatives sort first.
//! - `f64`: positive numbers with the sign bit set, negative numbers with all bits
//!   flipped, then big-endian (the IEEE 754 total order); `-0.0` is stored as `0.0`.
//! - index values: a type tag (`0x01` null, `0x02` false, `0x03` true, `0x04`
//!   integer, `0x05` float, `0x06` text) followed by the value's encoding.

use crate::types::IndexValue;

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

const TAG_NULL: u8 = 0x01;
const TAG_FALSE: u8 = 0x02;
const TAG_TRUE: u8 = 0x03;
const TAG_INT: u8 = 0x04;
const TAG_FLOAT: u8 = 0x05;
const TAG_TEXT: u8 = 0x06;

/// Builds a key part by part.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyBuf(Vec<u8>);

impl KeyBuf {
    pub(crate) fn new() -> Self {
        Self(Vec::with_capacity(48))
    }

    pub(crate) fn text(mut self, text: &str) -> Self {
        for &byte in text.as_bytes() {
            if byte == ESCAPE {
                self.0.extend_from_slice(&[ESCAPE, ESCAPED_ZERO]);
            } else {
                self.0.push(byte);
            }
        }
        self.0.extend_from_slice(&[ESCAPE, TERMINATOR]);
        self
    }

    pub(crate) fn u64(mut self, number: u64) -> Self {
        self.0.extend_from_slice(&number.to_be_bytes());
        self
    }

    pub(crate) fn i64(self, number: i64) -> Self {
        self.u64(sortable_i64(number))
    }

    pub(crate) fn value(mut self, value: &IndexValue) -> Self {
        match value {
            IndexValue::Null => {
                self.0.push(TAG_NULL);
                self
            }
            IndexValue::Bool(false) => {
                self.0.push(TAG_FALSE);
                self
            }
            IndexValue::Bool(true) => {
                self.0.push(TAG_TRUE);
                self
            }
            IndexValue::Int(number) => {
                self.0.push(TAG_INT);
                self.i64(*number)
            }
            IndexValue::Float(number) => {
                self.0.push(TAG_FLOAT);
                self.u64(sortable_f64(*number))
            }
            IndexValue::Text(text) => {
                self.0.push(TAG_TEXT);
                self.text(text)
            }
        }
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

fn sortable_i64(number: i64) -> u64 {
    (number as u64) ^ (1 << 63)
}

fn unsortable_i64(bits: u64) -> i64 {
    (bits ^ (1 << 63)) as i64
}

fn sortable_f64(number: f64) -> u64 {
    // -0.0 == 0.0, so both must find the same key.
    let number = if number == 0.0 { 0.0 } else { number };
    let bits = number.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

fn unsortable_f64(bits: u64) -> f64 {
    if bits >> 63 == 1 { f64::from_bits(bits & !(1 << 63)) } else { f64::from_bits(!bits) }
}

/// Reads a key part by part; `None` when the key does not have the expected shape.
#[derive(Debug)]
pub(crate) struct KeyReader<'a>(&'a [u8]);

impl<'a> KeyReader<'a> {
    pub(crate) fn new(key: &'a [u8]) -> Self {
        Self(key)
    }

    pub(crate) fn text(&mut self) -> Option<String> {
        let mut bytes = Vec::new();
        let mut rest = self.0;
        loop {
            let (&byte, after) = rest.split_first()?;
            if byte == ESCAPE {
                let (&next, after) = after.split_first()?;
                match next {
                    TERMINATOR => {
                        self.0 = after;
                        return String::from_utf8(bytes).ok();
                    }
                    ESCAPED_ZERO => bytes.push(0),
                    _ => return None,
                }
                rest = after;
            } else {
                bytes.push(byte);
                rest = after;
            }
        }
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*head))
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.u64().map(unsortable_i64)
    }

    pub(crate) fn value(&mut self) -> Option<IndexValue> {
        let (&tag, rest) = self.0.split_first()?;
        self.0 = rest;
        match tag {
            TAG_NULL => Some(IndexValue::Null),
            TAG_FALSE => Some(IndexValue::Bool(false)),
            TAG_TRUE => Some(IndexValue::Bool(true)),
            TAG_INT => self.i64().map(IndexValue::Int),
            TAG_FLOAT => self.u64().map(|bits| IndexValue::Float(unsortable_f64(bits))),
            TAG_TEXT => self.text().map(IndexValue::Text),
            _ => None,
        }
    }

    /// Succeeds only when the whole key was read.
    pub(crate) fn end(self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

/// A key made printable for reports: printable ASCII as is, other bytes as `\xNN`.
pub(crate) fn printable(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &byte in key {
        if byte.is_ascii_graphic() || byte == b' ' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Vec<u8> {
        KeyBuf::new().text(s).into_vec()
    }

    fn value(v: &IndexValue) -> Vec<u8> {
        KeyBuf::new().value(v).into_vec()
    }

    #[test]
    fn text_order_is_byte_order_and_prefix_free() {
        let words = ["", "\0", "\0\0", "a", "a\0", "a\0b", "aa", "ab", "b", "é", "中"];
        for pair in words.windows(2) {
            assert!(text(pair[0]) < text(pair[1]), "{pair:?}");
        }
        assert!(!text("ab").starts_with(&text("a")));
    }

    #[test]
    fn text_round_trips() {
        for word in ["", "\0", "a\0b\0", "中文 key", "\u{1}\u{ff}"] {
            let key = text(word);
            let mut reader = KeyReader::new(&key);
            assert_eq!(reader.text().as_deref(), Some(word));
            assert_eq!(reader.end(), Some(()));
        }
    }

    #[test]
    fn numbers_sort_by_value() {
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for pair in ints.windows(2) {
            assert!(value(&IndexValue::Int(pair[0])) < value(&IndexValue::Int(pair[1])));
        }
        let floats = [f64::MIN, -2.5, -1e-300, 0.0, 1e-300, 0.5, 3.0, f64::MAX];
        for pair in floats.windows(2) {
            assert!(
                value(&IndexValue::Float(pair[0])) < value(&IndexValue::Float(pair[1])),
                "{pair:?}"
            );
        }
        assert_eq!(value(&IndexValue::Float(-0.0)), value(&IndexValue::Float(0.0)));
    }

    #[test]
    fn values_round_trip() {
        let values = [
            IndexValue::Null,
            IndexValue::Bool(false),
            IndexValue::Bool(true),
            IndexValue::Int(-42),
            IndexValue::Float(-2.5),
            IndexValue::Float(1e10),
            IndexValue::Text("x\0y".into()),
        ];
        for pair in values.windows(2) {
            assert!(value(&pair[0]) < value(&pair[1]));
        }
        for v in values {
            let key = value(&v);
            let mut reader = KeyReader::new(&key);
            assert_eq!(reader.value(), Some(v));
            assert_eq!(reader.end(), Some(()));
        }
    }
}
