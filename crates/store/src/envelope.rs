//! The envelope of every stored value: one format-version byte, then JSON.
//!
//! A version byte rather than a JSON wrapper keeps decoding to one pass and lets a
//! later format change the body's encoding entirely. A value of an unknown version
//! is reported as an error, never guessed at.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::keys::printable;

/// The version of the values this build writes and reads.
pub(crate) const VALUE_FORMAT: u8 = 1;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![VALUE_FORMAT];
    serde_json::to_writer(&mut bytes, value).map_err(|error| {
        // Serializing plain data into memory fails only on types serde_json cannot
        // express (maps with non-text keys); say so rather than panic.
        StoreError::InvalidCommit(format!("value cannot be stored as JSON: {error}"))
    })?;
    Ok(bytes)
}

pub(crate) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(StoreError::Corrupt {
            tree,
            key: printable(key),
            reason: "empty value".to_owned(),
        });
    };
    if version != VALUE_FORMAT {
        return Err(StoreError::UnsupportedFormat {
            what: format!("a value in tree {tree}"),
            found: u32::from(version),
            supported: u32::from(VALUE_FORMAT),
        });
    }
    serde_json::from_slice(body).map_err(|error| StoreError::Corrupt {
        tree,
        key: printable(key),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_version() {
        let bytes = encode(&serde_json::json!({"a": 1})).expect("encodes");
        assert_eq!(bytes[0], VALUE_FORMAT);
        let back: serde_json::Value = decode("t", b"k", &bytes).expect("decodes");
        assert_eq!(back, serde_json::json!({"a": 1}));

        let mut future = bytes.clone();
        future[0] = 9;
        let error = decode::<serde_json::Value>("t", b"k", &future).expect_err("refused");
        assert!(matches!(error, StoreError::UnsupportedFormat { found: 9, .. }));
        assert!(decode::<serde_json::Value>("t", b"k", &[]).is_err());
        assert!(decode::<serde_json::Value>("t", b"k", &[VALUE_FORMAT, b'{']).is_err());
    }
}
