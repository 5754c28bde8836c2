//! Reading a whole CSV/TSV file of customer or session rows into memory, as text cells.
//!
//! Tabular training needs every row at once (split, statistics, shuffling), so unlike
//! [`crate::input`] this reads the whole file. Cells stay text; [`super::schema`] decides what
//! each column holds. Every row must have as many fields as the header.

use std::path::Path;

use super::PurchaseError;
use crate::csv_watch::{Watch, never_closed};

/// Cells that count as a missing value (compared after trimming, case-insensitively).
const MISSING_TOKENS: [&str; 6] = ["", "na", "n/a", "nan", "null", "none"];

/// Whether `cell` holds no value: empty, blank, or one of `NA`, `N/A`, `NaN`, `null`, `None`.
pub fn is_missing(cell: &str) -> bool {
    let cell = cell.trim();
    MISSING_TOKENS.iter().any(|t| cell.eq_ignore_ascii_case(t))
}

/// A CSV file read into memory: header and rows of text cells.
#[derive(Debug, Clone)]
pub struct Table {
    /// File name used in messages.
    pub file: String,
    /// Column names, in file order.
    pub headers: Vec<String>,
    /// Rows of cells, each as long as `headers`.
    pub rows: Vec<Vec<String>>,
    /// The 1-based number in the file (header excluded) of each row, for messages: rows left
    /// out (see [`Table::retain`]) keep the others' numbers unchanged.
    pub row_numbers: Vec<usize>,
}

impl Table {
    /// Reads `path`; the delimiter is a tab for `.tsv`/`.tab` files, else `delimiter` or `,`.
    ///
    /// # Errors
    /// Fails when the file cannot be read, is not UTF-8, has no header or no rows, or a row has
    /// a different number of fields than the header.
    pub fn read(path: &Path, delimiter: Option<u8>) -> Result<Self, PurchaseError> {
        let file = path.display().to_string();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let delimiter = match ext.as_deref() {
            Some("tsv" | "tab") => delimiter.unwrap_or(b'\t'),
            Some("csv") | None => delimiter.unwrap_or(b','),
            Some(_) if delimiter.is_some() => delimiter.unwrap_or(b','),
            Some(other) => {
                return Err(PurchaseError::UnknownFormat { file, extension: other.to_string() });
            }
        };
        let reader = std::fs::File::open(path)
            .map_err(|source| PurchaseError::Io { file: file.clone(), source })?;
        Self::from_reader(file, reader, delimiter)
    }

    /// Reads CSV from any reader; `file` names it in messages.
    ///
    /// # Errors
    /// As [`Table::read`].
    pub fn from_reader(
        file: String,
        reader: impl std::io::Read,
        delimiter: u8,
    ) -> Result<Self, PurchaseError> {
        let (reader, mut watch) = Watch::wrap(reader, delimiter);
        let mut csv =
            csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(reader);
        let headers: Vec<String> = csv
            .headers()
            .map_err(|e| csv_error(&file, 0, e, &[], 1))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        if watch.header_open(csv.position()) {
            return Err(PurchaseError::HeaderQuote { file });
        }
        if headers.iter().all(String::is_empty) {
            return Err(PurchaseError::Empty { file, what: "no header row" });
        }
        if let Some(dup) = headers
            .iter()
            .enumerate()
            .find_map(|(i, h)| headers[..i].contains(h).then(|| h.clone()))
        {
            return Err(PurchaseError::DuplicateColumn { file, column: dup });
        }
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            watch.record_starts(csv.position());
            match csv.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => rows.push(record.iter().map(str::to_string).collect()),
                Err(e) => {
                    let row = rows.len() + 1;
                    return Err(match watch.open_in_failed() {
                        Some(line) => unclosed(&file, row, line),
                        None => csv_error(&file, row, e, &headers, watch.record_line()),
                    });
                }
            }
        }
        if let Some(line) = watch.open_at_end() {
            return Err(unclosed(&file, rows.len(), line));
        }
        if rows.is_empty() {
            return Err(PurchaseError::Empty { file, what: "a header but no rows" });
        }
        let row_numbers = (1..=rows.len()).collect();
        Ok(Self { file, headers, rows, row_numbers })
    }

    /// The 1-based row number in the file of row `index`.
    pub fn row_number(&self, index: usize) -> usize {
        self.row_numbers[index]
    }

    /// Keeps the rows for which `keep` is true; returns how many were left out.
    pub fn retain(&mut self, mut keep: impl FnMut(&[String]) -> bool) -> usize {
        let before = self.rows.len();
        let mut numbers = std::mem::take(&mut self.row_numbers).into_iter();
        let mut kept_numbers = Vec::with_capacity(before);
        self.rows.retain(|r| {
            let number = numbers.next().expect("one number per row");
            let kept = keep(r);
            if kept {
                kept_numbers.push(number);
            }
            kept
        });
        self.row_numbers = kept_numbers;
        before - self.rows.len()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows (never true for a table that was read successfully).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The position of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The position of column `name`, or an error listing the columns; `flag` is the option that
    /// named it, for the hint.
    ///
    /// # Errors
    /// Fails when there is no such column.
    pub fn require(&self, name: &str, flag: &str) -> Result<usize, PurchaseError> {
        self.column(name).ok_or_else(|| PurchaseError::MissingColumn {
            file: self.file.clone(),
            column: name.to_string(),
            flag: flag.to_string(),
            available: list_columns(&self.headers),
        })
    }

    /// Values of column `index`, one per row.
    pub fn values(&self, index: usize) -> impl ExactSizeIterator<Item = &str> {
        self.rows.iter().map(move |r| r[index].as_str())
    }
}

/// Column names as a comma-separated list of backticked names.
pub fn list_columns(names: &[String]) -> String {
    names.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
}

/// Row `row`, whose quote opened on `line` is never closed.
fn unclosed(file: &str, row: usize, line: u64) -> PurchaseError {
    PurchaseError::Malformed { file: file.to_string(), row, line, problem: never_closed(line) }
}

/// Row `row`, starting on `line`, could not be read; `headers` names the column of a bad field
/// (empty while reading the header itself).
fn csv_error(
    file: &str,
    row: usize,
    err: csv::Error,
    headers: &[String],
    line: u64,
) -> PurchaseError {
    match err.into_kind() {
        csv::ErrorKind::Io(source) => PurchaseError::Io { file: file.to_string(), source },
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => PurchaseError::Malformed {
            file: file.to_string(),
            row,
            line,
            problem: format!("expected {expected_len} fields like the header, found {len}"),
        },
        csv::ErrorKind::Utf8 { err, .. } => PurchaseError::Malformed {
            file: file.to_string(),
            row,
            line,
            problem: match headers.get(err.field()) {
                Some(column) => format!(
                    "column `{column}`: invalid UTF-8 at byte {} of the field\nhint: save the \
                     file as UTF-8; `purchase` reads UTF-8 only",
                    err.valid_up_to()
                ),
                None => "invalid UTF-8 in the header\nhint: save the file as UTF-8; `purchase` \
                         reads UTF-8 only"
                    .to_string(),
            },
        },
        other => PurchaseError::Malformed {
            file: file.to_string(),
            row,
            line,
            problem: format!("{other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<Table, PurchaseError> {
        Table::from_reader("t.csv".into(), text.as_bytes(), b',')
    }

    #[test]
    fn a_bad_row_names_its_line_with_crlf_endings_too() {
        for text in ["a,b\n1,2\n3,4,5\n", "a,b\r\n1,2\r\n3,4,5\r\n"] {
            let msg = table(text).unwrap_err().to_string();
            assert!(msg.contains("row 2 (line 3)"), "{text:?}: {msg}");
        }
        for text in ["a,b\n1,2\n\n\n3,4,5\n", "a,b\r\n1,2\r\n\r\n\r\n3,4,5\r\n"] {
            let msg = table(text).unwrap_err().to_string();
            assert!(msg.contains("row 2 (line 5)"), "after blank lines, {text:?}: {msg}");
        }
    }

    #[test]
    fn a_quote_never_closed_is_an_error_not_lost_rows() {
        for (text, says) in [
            ("a,b\n1,x\n2,\"y\n3,z\n", "row 2 (line 3)"),
            ("a,b\r\n1,x\r\n\r\n2,\"y\r\n3,z\r\n", "row 2 (line 4)"),
            ("a,b\n\"1,x\n2,z\n", "row 1 (line 2)"),
            ("a,\"b\n1,x\n", "header (line 1)"),
        ] {
            let msg = table(text).unwrap_err().to_string();
            assert!(msg.contains(says) && msg.contains("never closed"), "{text:?}: {msg}");
        }
    }

    #[test]
    fn reads_header_and_rows_with_quotes() {
        let t = table("a,b\n1,\"x, y\"\n2,z\n").unwrap();
        assert_eq!(t.headers, ["a", "b"]);
        assert_eq!(t.rows[0][1], "x, y");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn short_row_names_row_and_field_counts() {
        let msg = table("a,b\n1,2\n3\n").unwrap_err().to_string();
        assert!(msg.contains("`t.csv`, row 2") && msg.contains("found 1"), "{msg}");
    }

    #[test]
    fn empty_file_and_header_only_are_errors() {
        assert!(matches!(table(""), Err(PurchaseError::Empty { .. })));
        assert!(matches!(table("a,b\n"), Err(PurchaseError::Empty { .. })));
    }

    #[test]
    fn retained_rows_keep_their_file_row_numbers() {
        let mut t = table("a\n1\n2\n3\n").unwrap();
        assert_eq!(t.retain(|r| r[0] != "2"), 1);
        assert_eq!((t.len(), t.row_number(1)), (2, 3));
    }

    #[test]
    fn missing_tokens() {
        for cell in ["", "  ", "NA", "nan", "NULL", "None", "n/a"] {
            assert!(is_missing(cell), "{cell:?}");
        }
        assert!(!is_missing("0") && !is_missing("no"));
    }
}
