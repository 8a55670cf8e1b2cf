//! Reading query strings by hand, so that every bad parameter gets a problem that
//! names it (axum's `Query` answers with plain text and cannot take filters whose
//! names depend on the form).

use percent_encoding::percent_decode_str;

use crate::problem::Problem;

/// The longest query string read; filters and cursors are far shorter.
const MAX_QUERY_BYTES: usize = 8 * 1024;

/// The `name=value` pairs of a query string, decoded (`+` is a space, `%XX` a byte,
/// the result UTF-8), in their order. A name without `=` has an empty value; empty
/// pairs (`a=1&&b=2`) are skipped.
pub(crate) fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, Problem> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    if raw.len() > MAX_QUERY_BYTES {
        return Err(Problem::bad_request(format!(
            "the query string is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn decode(text: &str) -> Result<String, Problem> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8().map(|decoded| decoded.into_owned()).map_err(|_| {
        Problem::bad_request(format!(
            "the query parameter `{text}` is not UTF-8 once decoded; percent-encode UTF-8 text"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::pairs;

    #[test]
    fn pairs_are_decoded_in_order() {
        let decoded = pairs(Some("region=east&name=%E5%90%88%E5%90%8C+v1.pdf&&flag")).expect("ok");
        assert_eq!(
            decoded,
            [
                ("region".to_owned(), "east".to_owned()),
                ("name".to_owned(), "合同 v1.pdf".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert_eq!(pairs(None).expect("ok"), []);
        assert!(pairs(Some("name=%FF")).is_err());
        assert!(pairs(Some(&"a".repeat(10_000))).is_err());
    }
}
