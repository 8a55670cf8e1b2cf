//! Tables as CSV files that spreadsheet programs open correctly: UTF-8 with a byte
//! order mark (so that Excel shows Chinese), CRLF line ends, RFC 4180 quoting, and
//! text cells that would start a formula (`=`, `+`, `-`, `@`) prefixed with `'`.

use serde::Serialize;

/// A table: a header row and rows of cells.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Table {
    /// The table's name in addresses (`funnel`, `coverage`, …).
    pub name: String,
    /// Its caption.
    pub title: String,
    /// The column names.
    pub header: Vec<String>,
    /// The rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

/// The byte order mark that tells spreadsheet programs the file is UTF-8.
const BOM: &str = "\u{feff}";

impl Table {
    /// The table as a CSV file.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(BOM);
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = row.iter().map(|cell| quote(cell)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// One cell, quoted when needed and defused when it would start a formula.
fn quote(cell: &str) -> String {
    let looks_like_formula = cell.starts_with(['=', '+', '@', '\t', '\r'])
        || (cell.starts_with('-') && cell.parse::<f64>().is_err());
    let cell = if looks_like_formula { format!("'{cell}") } else { cell.to_owned() };
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let table = Table {
            name: "t".into(),
            title: "T".into(),
            header: vec!["名称".into(), "金额".into()],
            rows: vec![vec!["a,\"b\"".into(), "-5".into()], vec!["=1+1".into(), "-x".into()]],
        };
        assert_eq!(table.to_csv(), "\u{feff}名称,金额\r\n\"a,\"\"b\"\"\",-5\r\n'=1+1,'-x\r\n");
    }
}
