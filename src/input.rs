//! Reading rows of text from CSV/TSV, JSONL or plain text files, or from standard input.
//!
//! Every row becomes one [`Record`] with a 1-based row number, an id (the id column when one is
//! named, else the row number), the text, and any extra columns asked for (a label, say). Rows are
//! read one at a time, so memory does not grow with the file. A problem stops the read with an
//! [`InputError`] naming the file, the row and the column.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::csv_watch::{Watch, never_closed};

/// File formats habitlens reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row (`.csv`; `.tsv` means tab-separated).
    Csv,
    /// One JSON object a line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// One text a line, no header (`.txt`).
    Text,
}

/// Text encodings habitlens decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TextEncoding {
    /// UTF-8; invalid bytes are an error.
    #[default]
    Utf8,
    /// Windows-1252, the superset of Latin-1 that spreadsheet exports use.
    Latin1,
}

/// Where the input comes from: a file or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input (`-` on the command line).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// `-` means standard input, anything else a path.
    pub fn from_arg(arg: &Path) -> Self {
        if arg.as_os_str() == "-" { Self::Stdin } else { Self::File(arg.to_path_buf()) }
    }

    /// The file name used in messages and reports.
    pub fn display_name(&self) -> String {
        match self {
            Self::Stdin => "<stdin>".to_string(),
            Self::File(p) => p.display().to_string(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// What went wrong while reading input. Every variant names the file; row-level ones name the
/// row (1-based, header excluded) and the column.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be opened or read.
    #[error("cannot read `{file}`")]
    Io {
        /// File name.
        file: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The format cannot be told from the name.
    #[error(
        "cannot tell the format of `{file}` from its extension\nhint: pass `--format csv`, `--format jsonl` or `--format text`"
    )]
    UnknownFormat {
        /// File name.
        file: String,
    },
    /// A column that was asked for does not exist.
    #[error("`{file}` has no column `{column}`; its columns are: {available}\nhint: {hint}")]
    MissingColumn {
        /// File name.
        file: String,
        /// Column asked for.
        column: String,
        /// Columns present, comma-separated.
        available: String,
        /// What to do.
        hint: String,
    },
    /// The file has no header row at all.
    #[error("`{file}` is empty: no header row")]
    Empty {
        /// File name.
        file: String,
    },
    /// A column that was asked for is named twice in the header.
    #[error(
        "`{file}` has {count} columns named `{column}`, so `{flag}` is ambiguous\nhint: rename the columns so each name is used once"
    )]
    DuplicateColumn {
        /// File name.
        file: String,
        /// Column asked for.
        column: String,
        /// How many columns have that name.
        count: usize,
        /// The flag that named it.
        flag: String,
    },
    /// No text column was named, and several columns are called `text` (in any case).
    #[error(
        "`{file}` has {count} columns called `text` (in any case): {columns}; which one holds the texts is not clear\nhint: {hint}"
    )]
    SeveralTextColumns {
        /// File name.
        file: String,
        /// How many.
        count: usize,
        /// Their names as written.
        columns: String,
        /// What to do.
        hint: &'static str,
    },
    /// No text column was named and none could be chosen.
    #[error(
        "`{file}` has several columns and none is called `text`; its columns are: {available}\nhint: pass `--text-column NAME`"
    )]
    AmbiguousTextColumn {
        /// File name.
        file: String,
        /// Columns present.
        available: String,
    },
    /// A field is not valid UTF-8.
    #[error(
        "`{file}`, row {row}, column `{column}`: invalid UTF-8 at byte {byte} of the field\nhint: if the file was exported from a spreadsheet, pass `--encoding latin1`"
    )]
    InvalidUtf8 {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Column name.
        column: String,
        /// Byte offset of the first invalid byte within the field.
        byte: usize,
    },
    /// A CSV row is malformed (wrong number of fields, bad quoting).
    #[error("`{file}`, row {row} (line {line}): {problem}")]
    Malformed {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Line number in the file.
        line: u64,
        /// Description.
        problem: String,
    },
    /// A quoted field of the CSV header is never closed.
    #[error("`{file}`, header (line 1): {}", crate::csv_watch::HEADER_NEVER_CLOSED)]
    HeaderQuote {
        /// File name.
        file: String,
    },
    /// A JSONL line is not a JSON object.
    #[error("`{file}`, row {row} (line {line}): {problem}")]
    Json {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Line number in the file (blank lines hold no row).
        line: u64,
        /// Description.
        problem: String,
    },
    /// A JSONL row lacks a field.
    #[error("`{file}`, row {row} (line {line}): field `{column}` is missing")]
    MissingField {
        /// File name.
        file: String,
        /// Row number.
        row: usize,
        /// Line number in the file.
        line: u64,
        /// Field name.
        column: String,
    },
    /// A flag does not apply to the format.
    #[error("`{file}`: {problem}")]
    Unsupported {
        /// File name.
        file: String,
        /// Description.
        problem: String,
    },
}

/// How to read the input.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Format; guessed from the extension when `None`.
    pub format: Option<Format>,
    /// Field delimiter for CSV; `,` (or tab for `.tsv`) when `None`.
    pub delimiter: Option<u8>,
    /// Encoding of the bytes.
    pub encoding: TextEncoding,
    /// Column (CSV) or field (JSONL) holding the text; see [`Reader::open`] for the default.
    pub text_column: Option<String>,
    /// Column or field holding the row id; the row number when `None`.
    pub id_column: Option<String>,
    /// Further columns every row must have, each with the flag that named it (for errors),
    /// returned in [`Record::extra`] in this order.
    pub extra_columns: Vec<(String, String)>,
    /// JSONL: a list of strings in one of [`ReadOptions::extra_columns`] (multi-label labels)
    /// is joined with this separator. `None`: a list there is an error, as it is in any other
    /// field.
    pub list_separator: Option<String>,
}

/// One input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based row number, header excluded.
    pub row: usize,
    /// The id column's value, else the row number.
    pub id: String,
    /// The text.
    pub text: String,
    /// Values of [`ReadOptions::extra_columns`], in that order.
    pub extra: Vec<String>,
}

impl Record {
    /// Whether the text is empty or only white space.
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }
}

enum Inner {
    Csv {
        reader: Box<csv::Reader<Box<dyn Read>>>,
        headers: Vec<String>,
        text: usize,
        id: Option<usize>,
        extra: Vec<usize>,
        record: csv::ByteRecord,
        /// Catches a quote that is never closed.
        watch: Watch,
    },
    Lines {
        reader: Box<dyn BufRead>,
        json: bool,
        line: Vec<u8>,
        /// Lines read so far, blank ones included.
        lines_read: u64,
    },
}

/// Reads [`Record`]s one at a time.
pub struct Reader {
    inner: Inner,
    file: String,
    options: ReadOptions,
    row: usize,
}

/// Guesses the format (and the CSV delimiter) from a file name.
pub fn format_from_path(path: &Path) -> Option<(Format, Option<u8>)> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some((Format::Csv, None)),
        "tsv" | "tab" => Some((Format::Csv, Some(b'\t'))),
        "jsonl" | "ndjson" => Some((Format::Jsonl, None)),
        "txt" | "text" => Some((Format::Text, None)),
        _ => None,
    }
}

impl Reader {
    /// Opens `source` and, for CSV, reads the header and checks that the columns exist.
    ///
    /// Without a text column, a CSV file with one column uses it, else a column named `text`
    /// (any case); JSONL uses the field `text`.
    ///
    /// # Errors
    /// Fails when the file cannot be opened, the format cannot be told, or a column is missing.
    pub fn open(source: &Source, options: ReadOptions) -> Result<Self, InputError> {
        let file = source.display_name();
        let io_err = |source| InputError::Io { file: file.clone(), source };
        let guessed = match source {
            Source::File(path) => format_from_path(path),
            Source::Stdin => None,
        };
        let format = options
            .format
            .or(guessed.map(|g| g.0))
            .ok_or_else(|| InputError::UnknownFormat { file: file.clone() })?;
        let raw: Box<dyn Read> = match source {
            Source::Stdin => Box::new(std::io::stdin().lock()),
            Source::File(path) => Box::new(File::open(path).map_err(io_err)?),
        };

        let inner = match format {
            Format::Csv => {
                let delimiter = options.delimiter.or(guessed.and_then(|g| g.1)).unwrap_or(b',');
                let (raw, watch) = Watch::wrap(raw, delimiter);
                let mut reader = csv::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .has_headers(true)
                    .from_reader(raw);
                let header_bytes = reader.byte_headers().map_err(|e| csv_error(&file, 0, e, 1))?;
                let headers: Vec<String> = header_bytes
                    .iter()
                    .map(|h| {
                        decode(h, options.encoding)
                            .unwrap_or_else(|_| String::from_utf8_lossy(h).into_owned())
                    })
                    .map(|h| h.trim_start_matches('\u{feff}').to_string())
                    .collect();
                if watch.header_open(reader.position()) {
                    return Err(InputError::HeaderQuote { file });
                }
                if headers.is_empty() {
                    return Err(InputError::Empty { file });
                }
                if let ([only], None) = (&headers[..], options.delimiter) {
                    warn_other_delimiter(&file, only, delimiter);
                }
                let find = |name: &str, flag: &str| {
                    let count = headers.iter().filter(|h| *h == name).count();
                    if count > 1 {
                        return Err(InputError::DuplicateColumn {
                            file: file.clone(),
                            column: name.to_string(),
                            count,
                            flag: flag.to_string(),
                        });
                    }
                    headers.iter().position(|h| h == name).ok_or_else(|| {
                        InputError::MissingColumn {
                            file: file.clone(),
                            column: name.to_string(),
                            available: list_columns(&headers),
                            hint: format!("pass `{flag}` one of the columns above"),
                        }
                    })
                };
                let text = match &options.text_column {
                    Some(name) => find(name, "--text-column")?,
                    None if headers.len() == 1 => 0,
                    None => {
                        let named: Vec<usize> = (0..headers.len())
                            .filter(|&i| headers[i].eq_ignore_ascii_case("text"))
                            .collect();
                        match named[..] {
                            [] => {
                                return Err(InputError::AmbiguousTextColumn {
                                    file: file.clone(),
                                    available: list_columns(&headers),
                                });
                            }
                            [i] => i,
                            _ => {
                                let columns: Vec<String> =
                                    named.iter().map(|&i| headers[i].clone()).collect();
                                // `--text-column` cannot tell apart two columns of one name.
                                let alike = columns.iter().any(|c| {
                                    columns.iter().filter(|other| *other == c).count() > 1
                                });
                                return Err(InputError::SeveralTextColumns {
                                    file: file.clone(),
                                    count: named.len(),
                                    columns: list_columns(&columns),
                                    hint: if alike {
                                        "rename the columns so that only one is called `text`"
                                    } else {
                                        "rename the columns so that only one is called `text`, \
                                         or pass `--text-column NAME`"
                                    },
                                });
                            }
                        }
                    }
                };
                let id =
                    options.id_column.as_deref().map(|c| find(c, "--id-column")).transpose()?;
                let extra = options
                    .extra_columns
                    .iter()
                    .map(|(c, flag)| find(c, flag))
                    .collect::<Result<Vec<_>, _>>()?;
                let record = csv::ByteRecord::new();
                let reader = Box::new(reader);
                Inner::Csv { reader, headers, text, id, extra, record, watch }
            }
            Format::Jsonl | Format::Text => {
                if format == Format::Text
                    && (options.id_column.is_some() || !options.extra_columns.is_empty())
                {
                    return Err(InputError::Unsupported {
                        file,
                        problem: "plain text has no columns: use CSV or JSONL to name an id or label column"
                            .to_string(),
                    });
                }
                Inner::Lines {
                    reader: Box::new(BufReader::with_capacity(1 << 16, raw)),
                    json: format == Format::Jsonl,
                    line: Vec::new(),
                    lines_read: 0,
                }
            }
        };
        Ok(Self { inner, file, options, row: 0 })
    }

    /// The file name used in messages.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// Column names of a CSV input (empty for other formats).
    pub fn headers(&self) -> &[String] {
        match &self.inner {
            Inner::Csv { headers, .. } => headers,
            Inner::Lines { .. } => &[],
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, InputError> {
        let encoding = self.options.encoding;
        match &mut self.inner {
            Inner::Csv { reader, headers, text, id, extra, record, watch } => {
                let row = self.row + 1;
                watch.record_starts(reader.position());
                match reader.read_byte_record(record) {
                    Ok(false) => {
                        return match watch.open_at_end() {
                            None => Ok(None),
                            Some(line) => Err(unclosed(&self.file, self.row, line)),
                        };
                    }
                    Ok(true) => {}
                    Err(e) => {
                        return Err(match watch.open_in_failed() {
                            Some(line) => unclosed(&self.file, row, line),
                            None => csv_error(&self.file, row, e, watch.record_line()),
                        });
                    }
                }
                self.row = row;
                let field = |index: usize| -> Result<String, InputError> {
                    let bytes = record.get(index).unwrap_or_default();
                    decode(bytes, encoding).map_err(|byte| InputError::InvalidUtf8 {
                        file: self.file.clone(),
                        row,
                        column: headers[index].clone(),
                        byte,
                    })
                };
                Ok(Some(Record {
                    row,
                    id: id.map(field).transpose()?.unwrap_or_else(|| row.to_string()),
                    text: field(*text)?,
                    extra: extra.iter().map(|&i| field(i)).collect::<Result<_, _>>()?,
                }))
            }
            Inner::Lines { reader, json, line, lines_read } => loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', line)
                    .map_err(|source| InputError::Io { file: self.file.clone(), source })?;
                if n == 0 {
                    return Ok(None);
                }
                *lines_read += 1;
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                let row = self.row + 1;
                let column = if *json { "<line>" } else { "text" };
                let decoded = decode(line, encoding).map_err(|byte| InputError::InvalidUtf8 {
                    file: self.file.clone(),
                    row,
                    column: column.to_string(),
                    byte,
                })?;
                if !*json {
                    self.row = row;
                    return Ok(Some(Record {
                        row,
                        id: row.to_string(),
                        text: decoded,
                        extra: vec![],
                    }));
                }
                // A blank line in JSONL separates nothing and holds no row.
                if decoded.trim().is_empty() {
                    continue;
                }
                self.row = row;
                return json_record(&self.file, (row, *lines_read), &decoded, &self.options)
                    .map(Some);
            },
        }
    }
}

impl Iterator for Reader {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// The record of JSONL row `row`, read from `line` of the file (`at`: the row and the line).
fn json_record(
    file: &str,
    at: (usize, u64),
    line: &str,
    options: &ReadOptions,
) -> Result<Record, InputError> {
    let (row, line_no) = at;
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| InputError::Json {
        file: file.to_string(),
        row,
        line: line_no,
        problem: format!("invalid JSON at column {}: {e}", e.column()),
    })?;
    let object = value.as_object().ok_or_else(|| InputError::Json {
        file: file.to_string(),
        row,
        line: line_no,
        problem: "expected a JSON object".to_string(),
    })?;
    // Numbers keep the text they were written with (`1.50`, `1e3`, ids of 20 digits), which
    // serde_json's `Number` would reformat or round; the raw fields are parsed only when needed.
    let raw_fields = std::cell::OnceCell::<HashMap<String, &serde_json::value::RawValue>>::new();
    let field = |name: &str, separator: Option<&str>| -> Result<String, InputError> {
        let bad = |problem: String| InputError::Json {
            file: file.to_string(),
            row,
            line: line_no,
            problem,
        };
        match object.get(name) {
            None => Err(InputError::MissingField {
                file: file.to_string(),
                row,
                line: line_no,
                column: name.to_string(),
            }),
            Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Array(items)) => {
                let Some(separator) = separator else {
                    return Err(bad(format!(
                        "field `{name}` is a list; only the labels of `--multi-label` training \
                         and evaluation may be"
                    )));
                };
                let labels: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
                let labels = labels.ok_or_else(|| {
                    bad(format!("field `{name}` is a list of other than strings"))
                })?;
                if let Some(label) = labels.iter().find(|l| l.contains(separator)) {
                    return Err(bad(format!(
                        "field `{name}`: label `{label}` contains the label separator \
                         `{separator}`"
                    )));
                }
                Ok(labels.join(separator))
            }
            Some(serde_json::Value::Object(_)) => Err(bad(format!(
                "field `{name}` is an object; expected a string, a number, true, false or null"
            ))),
            Some(number @ serde_json::Value::Number(_)) => {
                let raw = raw_fields.get_or_init(|| serde_json::from_str(line).unwrap_or_default());
                Ok(raw.get(name).map_or_else(|| number.to_string(), |r| r.get().to_string()))
            }
            // `true` and `false`.
            Some(other) => Ok(other.to_string()),
        }
    };
    let text_field = options.text_column.as_deref().unwrap_or("text");
    let list = options.list_separator.as_deref();
    Ok(Record {
        row,
        id: options
            .id_column
            .as_deref()
            .map(|c| field(c, None))
            .transpose()?
            .unwrap_or_else(|| row.to_string()),
        text: field(text_field, None)?,
        extra: options
            .extra_columns
            .iter()
            .map(|(c, _)| field(c, list))
            .collect::<Result<_, _>>()?,
    })
}

/// Decodes bytes; on invalid UTF-8 returns the offset of the first bad byte.
fn decode(bytes: &[u8], encoding: TextEncoding) -> Result<String, usize> {
    match encoding {
        TextEncoding::Utf8 => {
            std::str::from_utf8(bytes).map(str::to_string).map_err(|e| e.valid_up_to())
        }
        TextEncoding::Latin1 => {
            Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0.into_owned())
        }
    }
}

fn list_columns(headers: &[String]) -> String {
    headers.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
}

/// Warns when the one column of a CSV header looks like several joined by another delimiter
/// (`id;text`, a tab-separated file named `.csv`): the rows would be read whole as texts.
fn warn_other_delimiter(file: &str, header: &str, delimiter: u8) {
    let others = [(b'\t', "tab"), (b';', "';'"), (b'|', "'|'")];
    if let Some((_, flag)) =
        others.iter().find(|(d, _)| *d != delimiter && header.as_bytes().contains(d))
    {
        tracing::warn!(
            "`{file}` has a single column, `{}`, whose name holds a {flag}: if the file is \
             separated by it, pass `--delimiter {flag}`, or every row is read whole as one text",
            header.escape_default()
        );
    }
}

/// Row `row`, whose quote opened on `line` is never closed.
fn unclosed(file: &str, row: usize, line: u64) -> InputError {
    InputError::Malformed { file: file.to_string(), row, line, problem: never_closed(line) }
}

/// Row `row`, starting on `line`, could not be read.
fn csv_error(file: &str, row: usize, err: csv::Error, line: u64) -> InputError {
    match err.into_kind() {
        csv::ErrorKind::Io(source) => InputError::Io { file: file.to_string(), source },
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => InputError::Malformed {
            file: file.to_string(),
            row,
            line,
            problem: format!("expected {expected_len} fields like the header, found {len}"),
        },
        other => InputError::Malformed {
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
    use std::io::Write;

    fn write_temp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        File::create(&path).unwrap().write_all(bytes).unwrap();
        (dir, path)
    }

    fn read_all(path: &Path, options: ReadOptions) -> Result<Vec<Record>, InputError> {
        Reader::open(&Source::File(path.to_path_buf()), options)?.collect()
    }

    #[test]
    fn csv_quoted_fields_keep_commas_and_new_lines() {
        let (_d, path) = write_temp("r.csv", b"id,text\n7,\"fits, but\nruns small\"\n8,ok\n");
        let options = ReadOptions { id_column: Some("id".into()), ..Default::default() };
        let rows = read_all(&path, options).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, "7");
        assert_eq!(rows[0].text, "fits, but\nruns small");
        assert_eq!(rows[1].row, 2);
    }

    #[test]
    fn missing_column_lists_existing_ones() {
        let (_d, path) = write_temp("r.csv", b"a,b\n1,2\n");
        let options = ReadOptions { text_column: Some("body".into()), ..Default::default() };
        let err = read_all(&path, options).unwrap_err().to_string();
        assert!(err.contains("no column `body`") && err.contains("`a`, `b`"), "{err}");
    }

    #[test]
    fn invalid_utf8_names_row_and_column_and_latin1_reads_it() {
        let (_d, path) = write_temp("r.csv", b"text\nfine\ncaf\xe9 au lait\n");
        let err = read_all(&path, ReadOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("row 2") && msg.contains("column `text`") && msg.contains("byte 3"),
            "{msg}"
        );
        let options = ReadOptions { encoding: TextEncoding::Latin1, ..Default::default() };
        assert_eq!(read_all(&path, options).unwrap()[1].text, "café au lait");
    }

    #[test]
    fn empty_csv_says_so() {
        // An empty file was reported as having "several columns and none is called `text`".
        let (_d, path) = write_temp("r.csv", b"");
        let msg = read_all(&path, ReadOptions::default()).unwrap_err().to_string();
        assert_eq!(msg, format!("`{}` is empty: no header row", path.display()));
        let options = ReadOptions { text_column: Some("review".into()), ..Default::default() };
        let msg = read_all(&path, options).unwrap_err().to_string();
        assert!(msg.contains("is empty: no header row"), "{msg}");
    }

    #[test]
    fn a_named_column_that_appears_twice_is_an_error() {
        // `--text-column review` on `id,review,review` silently read the first of the two.
        let (_d, path) = write_temp("r.csv", b"id,review,review\n1,a,b\n");
        let options = ReadOptions { text_column: Some("review".into()), ..Default::default() };
        let msg = read_all(&path, options).unwrap_err().to_string();
        assert!(
            msg.contains("2 columns named `review`") && msg.contains("`--text-column`"),
            "{msg}"
        );
        let options = ReadOptions {
            text_column: Some("id".into()),
            id_column: Some("review".into()),
            ..Default::default()
        };
        assert!(read_all(&path, options).unwrap_err().to_string().contains("`--id-column`"));
        // Duplicates among columns nobody asked for do not matter.
        let options = ReadOptions { text_column: Some("id".into()), ..Default::default() };
        assert_eq!(read_all(&path, options).unwrap()[0].text, "1");
    }

    #[test]
    fn two_default_text_columns_are_an_error() {
        for (header, names_one) in [("id,text,text", false), ("id,Text,TEXT", true)] {
            let (_d, path) = write_temp("d.csv", format!("{header}\n1,a,b\n").as_bytes());
            let msg = read_all(&path, ReadOptions::default()).unwrap_err().to_string();
            assert!(msg.contains("2 columns called `text`"), "{msg}");
            assert_eq!(msg.contains("--text-column"), names_one, "{msg}");
        }
        let (_d, path) = write_temp("d.csv", b"id,TEXT\n1,a\n");
        assert_eq!(read_all(&path, ReadOptions::default()).unwrap()[0].text, "a");
    }

    #[test]
    fn short_csv_row_is_an_error_with_row_number() {
        let (_d, path) = write_temp("r.csv", b"id,text\n1,a\n2\n");
        let msg = read_all(&path, ReadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("row 2") && msg.contains("expected 2 fields"), "{msg}");
    }

    #[test]
    fn a_quote_never_closed_is_an_error_not_lost_rows() {
        for bytes in
            [&b"id,text\n1,a\n2,\"b\n3,c\n4,d\n"[..], b"id,text\r\n1,a\r\n2,\"b\r\n3,c\r\n"]
        {
            let (_d, path) = write_temp("q.csv", bytes);
            let msg = read_all(&path, ReadOptions::default()).unwrap_err().to_string();
            assert!(msg.contains("row 2 (line 3)") && msg.contains("never closed"), "{msg}");
        }
        let (_d, path) = write_temp("q.csv", b"id,text\n1,\"a\nb\"\n2,\"c \"\"d\"\"\"\n");
        assert_eq!(read_all(&path, ReadOptions::default()).unwrap().len(), 2);
        for (bytes, says) in [
            (&b"id,text\n1,a\n\n\n2,\"b\n3,c\n"[..], "row 2 (line 5)"),
            (b"text,id\n\"a,1\n2,b\n", "row 1 (line 2): a quoted field opened on line 2"),
            (b"id,\"text\n1,a\n", "header (line 1)"),
        ] {
            let (_d, path) = write_temp("q.csv", bytes);
            let msg = read_all(&path, ReadOptions::default()).unwrap_err().to_string();
            assert!(msg.contains(says) && msg.contains("never closed"), "{msg}");
        }
    }

    #[test]
    fn a_bad_row_is_on_the_same_line_with_lf_and_crlf_endings() {
        for (name, bytes) in [
            ("lf.csv", &b"id,text\n1,a\n2,b\n3,c,extra\n4,d\n"[..]),
            ("crlf.csv", &b"id,text\r\n1,a\r\n2,\"b\r\nb\"\r\n3,c,extra\r\n4,d\r\n"[..]),
            ("blank-lf.csv", &b"id,text\n1,a\n\n\n2,b,extra\n"[..]),
            ("blank-crlf.csv", &b"id,text\r\n1,a\r\n\r\n2,b,extra\r\n"[..]),
        ] {
            let (_d, path) = write_temp(name, bytes);
            let msg = read_all(&path, ReadOptions::default()).unwrap_err().to_string();
            let at = match name {
                "lf.csv" => "row 3 (line 4)",
                "crlf.csv" => "row 3 (line 5)",
                "blank-lf.csv" => "row 2 (line 5)",
                _ => "row 2 (line 4)",
            };
            assert!(msg.contains(at), "{name}: {msg}");
        }
    }

    #[test]
    fn tsv_and_text_formats_come_from_the_extension() {
        let (_d, path) = write_temp("r.tsv", b"text\tstars\nhello, world\t5\n");
        assert_eq!(read_all(&path, ReadOptions::default()).unwrap()[0].text, "hello, world");
        let (_d2, path) = write_temp("r.txt", b"one\r\n\r\nthree\n");
        let rows = read_all(&path, ReadOptions::default()).unwrap();
        let texts: Vec<_> = rows.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["one", "", "three"]);
        assert!(rows[1].is_blank());
    }

    #[test]
    fn jsonl_label_lists_are_joined_for_multi_label_and_refused_elsewhere() {
        let (_d, path) = write_temp(
            "l.jsonl",
            b"{\"text\":\"a\",\"tags\":[\"x\",\"y\"]}\n{\"text\":\"b\",\"tags\":\"x\"}\n",
        );
        let extra = vec![("tags".to_string(), "--label-column".to_string())];
        let options = ReadOptions {
            extra_columns: extra.clone(),
            list_separator: Some(";".into()),
            ..Default::default()
        };
        let rows = read_all(&path, options).unwrap();
        assert_eq!((rows[0].extra[0].as_str(), rows[1].extra[0].as_str()), ("x;y", "x"));
        let single = ReadOptions { extra_columns: extra, ..Default::default() };
        let msg = read_all(&path, single).unwrap_err().to_string();
        assert!(msg.contains("row 1") && msg.contains("field `tags` is a list"), "{msg}");
        let (_d2, text_list) = write_temp("t.jsonl", b"{\"text\":[\"a\"]}\n");
        let msg = read_all(&text_list, ReadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("field `text` is a list"), "{msg}");
    }

    #[test]
    fn jsonl_objects_are_refused_and_numbers_and_booleans_read_as_written() {
        let (_d, path) = write_temp(
            "o.jsonl",
            b"{\"text\":\"a\",\"id\":true}\n{\"text\":{\"body\":\"b\"},\"id\":2.5}\n",
        );
        let options = ReadOptions { id_column: Some("id".into()), ..Default::default() };
        let msg = read_all(&path, options.clone()).unwrap_err().to_string();
        assert!(msg.contains("o.jsonl") && msg.contains("row 2"), "{msg}");
        assert!(msg.contains("field `text` is an object"), "{msg}");
        let (_d2, ok) = write_temp(
            "n.jsonl",
            b"{\"text\":\"a\",\"id\":true}\n{\"text\":7,\"id\":2.50}\n\
              {\"text\":1e3,\"id\":18446744073709551617}\n\
              {\"id\":-12345678901234567890123,\"text\":\"b\"}\n",
        );
        let rows = read_all(&ok, options).unwrap();
        let got: Vec<_> = rows.iter().map(|r| (r.id.as_str(), r.text.as_str())).collect();
        let want = [
            ("true", "a"),
            ("2.50", "7"),
            ("18446744073709551617", "1e3"),
            ("-12345678901234567890123", "b"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn jsonl_reads_fields_and_reports_bad_lines() {
        let (_d, path) =
            write_temp("r.jsonl", b"{\"text\":\"a\",\"id\":3}\n\n{\"text\":null,\"id\":4}\n");
        let options = ReadOptions { id_column: Some("id".into()), ..Default::default() };
        let rows = read_all(&path, options.clone()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].id.as_str(), rows[1].text.as_str()), ("3", ""));
        let (_d2, bad) = write_temp("b.jsonl", b"{\"text\":\"a\"}\n{\"txt\":\"b\"}\n");
        let msg = read_all(&bad, options).unwrap_err().to_string();
        assert!(msg.contains("row 1") && msg.contains("`id`"), "{msg}");
        // Blank lines hold no row, so the line is named beside the row.
        let (_d3, bad) = write_temp("c.jsonl", b"{\"text\":\"a\"}\n\n\n{\"text\": [1, {}]\n");
        let msg = read_all(&bad, ReadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("row 2 (line 4)"), "{msg}");
        let (_d4, bad) = write_temp("d.jsonl", b"\n{\"txt\":\"b\"}\n");
        let msg = read_all(&bad, ReadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("row 1 (line 2)") && msg.contains("`text`"), "{msg}");
    }

    #[test]
    fn unknown_extension_asks_for_format() {
        let (_d, path) = write_temp("r.dat", b"x\n");
        assert!(matches!(
            read_all(&path, ReadOptions::default()),
            Err(InputError::UnknownFormat { .. })
        ));
    }
}
