//! Turning table rows into feature vectors, with statistics learned from the training rows only.
//!
//! Per column kind:
//! - numeric: a non-negative column whose training values are strongly right-skewed (skewness
//!   above [`SKEW_FOR_LOG`], as page counts, durations and amounts are) goes through `log1p`
//!   first, and gets an "is zero" feature when at least [`ZERO_SHARE`] of its training values
//!   are zero (a session with no product page is a different kind of session, not just a small
//!   one). Then it is standardised with the training mean and standard deviation;
//! - boolean: one 0/1 feature;
//! - categorical: one-hot over the values seen at least [`MIN_CATEGORY_COUNT`] times in training
//!   (at most [`MAX_CATEGORIES`], most frequent first), plus an `<unknown>` bucket for any other
//!   value and a `<missing>` bucket;
//! - text: the sentence embedding (unit length) scaled by √dimension, so each component has a
//!   spread near 1 like the standardised numbers; a blank text gets zeros and a missing flag.
//!
//! A missing numeric or boolean cell is imputed with the training mean (0 after
//! standardisation) and, when the training rows had missing cells in that column, flagged in a
//! `:missing` feature. Each input column owns a contiguous range of features, which permutation
//! importance uses.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::PurchaseError;
use super::schema::{ColumnKind, ColumnSpec, parse_bool, parse_number};
use super::table::{Table, is_missing};

/// Skewness of the training values above which a non-negative column is log-transformed.
pub const SKEW_FOR_LOG: f64 = 1.0;
/// Share of zeros in a log-transformed column above which it gets an "is zero" feature.
pub const ZERO_SHARE: f64 = 0.05;
/// Fewest training rows a category needs to get its own feature.
pub const MIN_CATEGORY_COUNT: usize = 3;
/// Most categories of one column with their own feature.
pub const MAX_CATEGORIES: usize = 100;

/// Sentence embeddings of a text column, one per table row.
#[derive(Debug, Clone)]
pub struct TextVectors {
    /// Length of each vector.
    pub dimension: usize,
    /// Rows × dimension, row-major; zeros for blank texts.
    pub values: Vec<f32>,
    /// Whether each row's text was blank.
    pub blank: Vec<bool>,
}

/// How one input column becomes features, with its training statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnEncoding {
    /// A standardised number.
    Numeric {
        /// Whether `log1p` is applied before standardising.
        log1p: bool,
        /// Whether an "is zero" feature is added.
        zero_indicator: bool,
        /// Training mean (after `log1p` when applied).
        mean: f64,
        /// Training standard deviation (1 when the column is constant).
        std: f64,
        /// Whether a missing-value feature is added.
        missing_indicator: bool,
    },
    /// A 0/1 value.
    Boolean {
        /// Share of yes in training, used for missing cells.
        rate: f64,
        /// Whether a missing-value feature is added.
        missing_indicator: bool,
    },
    /// One-hot categories.
    Categorical {
        /// Values with their own feature, in feature order; then `<unknown>` and `<missing>`.
        categories: Vec<String>,
    },
    /// A sentence embedding.
    Text {
        /// Embedding length.
        dimension: usize,
        /// Factor applied to each component.
        scale: f32,
    },
}

impl ColumnEncoding {
    /// Number of features this column produces.
    pub fn width(&self) -> usize {
        match self {
            Self::Numeric { zero_indicator, missing_indicator, .. } => {
                1 + usize::from(*zero_indicator) + usize::from(*missing_indicator)
            }
            Self::Boolean { missing_indicator, .. } => 1 + usize::from(*missing_indicator),
            Self::Categorical { categories } => categories.len() + 2,
            Self::Text { dimension, .. } => dimension + 1,
        }
    }
}

/// An input column with its encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedColumn {
    /// Column name.
    pub name: String,
    /// How it is encoded.
    #[serde(flatten)]
    pub encoding: ColumnEncoding,
}

/// The fitted feature encoding of every input column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    /// Columns in feature order.
    pub columns: Vec<EncodedColumn>,
}

impl Encoder {
    /// Learns the encoding of `specs` from the rows `train` of `table`.
    ///
    /// # Errors
    /// Fails when a numeric column holds a cell that is not a number (naming file, row and
    /// column), or a text column has no vectors.
    pub fn fit(
        table: &Table,
        specs: &[ColumnSpec],
        train: &[usize],
        text: Option<&TextVectors>,
    ) -> Result<Self, PurchaseError> {
        let mut columns = Vec::with_capacity(specs.len());
        for spec in specs {
            let index = table.require(&spec.name, "the schema")?;
            let encoding = match spec.kind {
                ColumnKind::Numeric => {
                    let mut values = Vec::with_capacity(train.len());
                    let mut missing = 0usize;
                    for &r in train {
                        match read_number(table, r, index)? {
                            Some(v) => values.push(v),
                            None => missing += 1,
                        }
                    }
                    fit_numeric(&values, missing > 0)
                }
                ColumnKind::Boolean => {
                    let (mut yes, mut present) = (0usize, 0usize);
                    for &r in train {
                        if let Some(b) = read_bool(table, r, index)? {
                            present += 1;
                            yes += usize::from(b);
                        }
                    }
                    ColumnEncoding::Boolean {
                        rate: if present == 0 { 0.0 } else { yes as f64 / present as f64 },
                        missing_indicator: present < train.len(),
                    }
                }
                ColumnKind::Categorical => {
                    let mut seen: std::collections::HashMap<&str, usize> = Default::default();
                    for &r in train {
                        let cell = table.rows[r][index].trim();
                        if !is_missing(cell) {
                            *seen.entry(cell).or_default() += 1;
                        }
                    }
                    let mut counts: Vec<(String, usize)> =
                        seen.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    // Most frequent first; ties by value so the order never depends on hashing.
                    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    let categories = counts
                        .into_iter()
                        .filter(|(_, n)| *n >= MIN_CATEGORY_COUNT)
                        .take(MAX_CATEGORIES)
                        .map(|(v, _)| v)
                        .collect();
                    ColumnEncoding::Categorical { categories }
                }
                ColumnKind::Text => {
                    let vectors = text.ok_or_else(|| PurchaseError::NoTextVectors {
                        column: spec.name.clone(),
                    })?;
                    let dimension = vectors.dimension;
                    ColumnEncoding::Text { dimension, scale: (dimension as f32).sqrt() }
                }
            };
            columns.push(EncodedColumn { name: spec.name.clone(), encoding });
        }
        Ok(Self { columns })
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.columns.iter().map(|c| c.encoding.width()).sum()
    }

    /// The range of features each input column owns, in column order.
    pub fn column_ranges(&self) -> Vec<Range<usize>> {
        let mut start = 0;
        self.columns
            .iter()
            .map(|c| {
                let range = start..start + c.encoding.width();
                start = range.end;
                range
            })
            .collect()
    }

    /// Names of the features, in order.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width());
        for column in &self.columns {
            let name = &column.name;
            match &column.encoding {
                ColumnEncoding::Numeric { zero_indicator, missing_indicator, log1p, .. } => {
                    names.push(if *log1p { format!("log1p({name})") } else { name.clone() });
                    if *zero_indicator {
                        names.push(format!("{name}:zero"));
                    }
                    if *missing_indicator {
                        names.push(format!("{name}:missing"));
                    }
                }
                ColumnEncoding::Boolean { missing_indicator, .. } => {
                    names.push(name.clone());
                    if *missing_indicator {
                        names.push(format!("{name}:missing"));
                    }
                }
                ColumnEncoding::Categorical { categories } => {
                    names.extend(categories.iter().map(|c| format!("{name}={c}")));
                    names.push(format!("{name}=<unknown>"));
                    names.push(format!("{name}=<missing>"));
                }
                ColumnEncoding::Text { dimension, .. } => {
                    names.extend((0..*dimension).map(|i| format!("{name}:embedding{i}")));
                    names.push(format!("{name}:missing"));
                }
            }
        }
        names
    }

    /// Encodes the rows `rows` of `table` (rows × [`Encoder::width`], row-major). `text` holds
    /// one vector per table row when the model has a text column.
    ///
    /// # Errors
    /// Fails when a column is absent, a numeric or boolean cell cannot be read (naming file,
    /// row and column), or text vectors are missing or of the wrong length.
    pub fn encode(
        &self,
        table: &Table,
        rows: &[usize],
        text: Option<&TextVectors>,
    ) -> Result<Vec<f32>, PurchaseError> {
        let width = self.width();
        let mut out = vec![0f32; rows.len() * width];
        let mut start = 0;
        for column in &self.columns {
            let index = table.require(&column.name, "the model")?;
            let w = column.encoding.width();
            for (i, &r) in rows.iter().enumerate() {
                let slot = &mut out[i * width + start..i * width + start + w];
                encode_cell(table, r, index, &column.encoding, text, slot)?;
            }
            start += w;
        }
        Ok(out)
    }
}

fn encode_cell(
    table: &Table,
    row: usize,
    index: usize,
    encoding: &ColumnEncoding,
    text: Option<&TextVectors>,
    slot: &mut [f32],
) -> Result<(), PurchaseError> {
    match encoding {
        ColumnEncoding::Numeric { log1p, zero_indicator, mean, std, missing_indicator } => {
            let value = read_number(table, row, index)?;
            let mut k = 1;
            match value {
                Some(v) => {
                    // A negative value in a log column (unseen in training) is clamped to 0.
                    let x = if *log1p { v.max(0.0).ln_1p() } else { v };
                    slot[0] = ((x - mean) / std) as f32;
                    if *zero_indicator {
                        slot[1] = f32::from(u8::from(v == 0.0));
                    }
                }
                None => {
                    slot[0] = 0.0;
                    if *zero_indicator {
                        slot[1] = 0.0;
                    }
                }
            }
            k += usize::from(*zero_indicator);
            if *missing_indicator {
                slot[k] = f32::from(u8::from(value.is_none()));
            }
        }
        ColumnEncoding::Boolean { rate, missing_indicator } => {
            let value = read_bool(table, row, index)?;
            slot[0] = value.map_or(*rate as f32, |b| f32::from(u8::from(b)));
            if *missing_indicator {
                slot[1] = f32::from(u8::from(value.is_none()));
            }
        }
        ColumnEncoding::Categorical { categories } => {
            let cell = table.rows[row][index].trim();
            let hot = if is_missing(cell) {
                categories.len() + 1
            } else {
                categories.iter().position(|c| c == cell).unwrap_or(categories.len())
            };
            slot[hot] = 1.0;
        }
        ColumnEncoding::Text { dimension, scale } => {
            let vectors = text.ok_or_else(|| PurchaseError::NoTextVectors {
                column: table.headers[index].clone(),
            })?;
            if vectors.dimension != *dimension {
                return Err(PurchaseError::TextDimension {
                    column: table.headers[index].clone(),
                    expected: *dimension,
                    got: vectors.dimension,
                });
            }
            let v = &vectors.values[row * dimension..(row + 1) * dimension];
            for (s, x) in slot[..*dimension].iter_mut().zip(v) {
                *s = x * scale;
            }
            slot[*dimension] = f32::from(u8::from(vectors.blank[row]));
        }
    }
    Ok(())
}

/// Reads a numeric cell: `None` when missing.
fn read_number(table: &Table, row: usize, index: usize) -> Result<Option<f64>, PurchaseError> {
    let cell = &table.rows[row][index];
    if is_missing(cell) {
        return Ok(None);
    }
    parse_number(cell).map(Some).ok_or_else(|| PurchaseError::NotNumeric {
        file: table.file.clone(),
        row: table.row_number(row),
        column: table.headers[index].clone(),
        value: cell.clone(),
    })
}

/// Reads a boolean cell: `None` when missing.
fn read_bool(table: &Table, row: usize, index: usize) -> Result<Option<bool>, PurchaseError> {
    let cell = &table.rows[row][index];
    if is_missing(cell) {
        return Ok(None);
    }
    parse_bool(cell).map(Some).ok_or_else(|| PurchaseError::NotBoolean {
        file: table.file.clone(),
        row: table.row_number(row),
        column: table.headers[index].clone(),
        value: cell.clone(),
    })
}

/// Fits a numeric column's encoding from its present training values.
fn fit_numeric(values: &[f64], has_missing: bool) -> ColumnEncoding {
    let n = values.len().max(1) as f64;
    let (mean, std) = mean_std(values);
    let skew = if std > 0.0 {
        values.iter().map(|v| ((v - mean) / std).powi(3)).sum::<f64>() / n
    } else {
        0.0
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let log1p = !values.is_empty() && min >= 0.0 && skew > SKEW_FOR_LOG;
    let zeros = values.iter().filter(|&&v| v == 0.0).count() as f64 / n;
    let zero_indicator = log1p && (ZERO_SHARE..1.0).contains(&zeros);
    let (mean, std) = if log1p {
        mean_std(&values.iter().map(|v| v.ln_1p()).collect::<Vec<_>>())
    } else {
        (mean, std)
    };
    ColumnEncoding::Numeric {
        log1p,
        zero_indicator,
        mean,
        std: if std > 0.0 { std } else { 1.0 },
        missing_indicator: has_missing,
    }
}

/// Mean and population standard deviation; (0, 0) for no values.
fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        Table::from_reader("t.csv".into(), text.as_bytes(), b',').unwrap()
    }

    fn spec(name: &str, kind: ColumnKind) -> ColumnSpec {
        ColumnSpec { name: name.into(), kind, forced: false }
    }

    #[test]
    fn numeric_is_standardised_with_training_rows_only() {
        let t = table("x\n1\n3\n100\n");
        let enc = Encoder::fit(&t, &[spec("x", ColumnKind::Numeric)], &[0, 1], None).unwrap();
        let ColumnEncoding::Numeric { mean, std, log1p, missing_indicator, .. } =
            enc.columns[0].encoding
        else {
            panic!()
        };
        assert_eq!((mean, std, log1p, missing_indicator), (2.0, 1.0, false, false));
        assert_eq!(enc.encode(&t, &[0, 2], None).unwrap(), [-1.0, 98.0]);
    }

    #[test]
    fn skewed_counts_get_log1p_and_a_zero_flag() {
        let t = table("x\n0\n0\n0\n1\n1\n2\n3\n50\n");
        let enc =
            Encoder::fit(&t, &[spec("x", ColumnKind::Numeric)], &[0, 1, 2, 3, 4, 5, 6, 7], None)
                .unwrap();
        let ColumnEncoding::Numeric { log1p, zero_indicator, .. } = enc.columns[0].encoding else {
            panic!()
        };
        assert!(log1p && zero_indicator);
        assert_eq!(enc.feature_names(), ["log1p(x)", "x:zero"]);
        let row = enc.encode(&t, &[0], None).unwrap();
        assert_eq!(row[1], 1.0);
    }

    #[test]
    fn missing_cells_are_imputed_and_flagged() {
        let t = table("x,b\n2,TRUE\n,\n4,FALSE\n");
        let specs = [spec("x", ColumnKind::Numeric), spec("b", ColumnKind::Boolean)];
        let enc = Encoder::fit(&t, &specs, &[0, 1, 2], None).unwrap();
        assert_eq!(enc.feature_names(), ["x", "x:missing", "b", "b:missing"]);
        assert_eq!(enc.encode(&t, &[1], None).unwrap(), [0.0, 1.0, 0.5, 1.0]);
        assert_eq!(enc.encode(&t, &[0], None).unwrap(), [-1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn categories_one_hot_with_unknown_and_missing_buckets() {
        let t = table("c\nFeb\nFeb\nFeb\nMar\nMar\nMar\nMay\n\"\"\n");
        let enc =
            Encoder::fit(&t, &[spec("c", ColumnKind::Categorical)], &[0, 1, 2, 3, 4, 5], None)
                .unwrap();
        assert_eq!(enc.feature_names(), ["c=Feb", "c=Mar", "c=<unknown>", "c=<missing>"]);
        assert_eq!(
            enc.encode(&t, &[6, 7, 3], None).unwrap(),
            [
                0.0, 0.0, 1.0, 0.0, //
                0.0, 0.0, 0.0, 1.0, //
                0.0, 1.0, 0.0, 0.0
            ]
        );
    }

    #[test]
    fn bad_numeric_cell_names_row_and_column() {
        let t = table("a,x\n1,2\n2,two\n");
        let err = Encoder::fit(&t, &[spec("x", ColumnKind::Numeric)], &[0, 1], None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("row 2") && msg.contains("`x`") && msg.contains("`two`"), "{msg}");
    }

    #[test]
    fn text_vectors_are_scaled_and_blank_flagged() {
        let t = table("t\nhello\n\" \"\n");
        let vectors = TextVectors {
            dimension: 4,
            values: vec![0.5; 4].into_iter().chain([0.0; 4]).collect(),
            blank: vec![false, true],
        };
        let enc =
            Encoder::fit(&t, &[spec("t", ColumnKind::Text)], &[0, 1], Some(&vectors)).unwrap();
        assert_eq!(enc.width(), 5);
        assert_eq!(
            enc.encode(&t, &[0, 1], Some(&vectors)).unwrap(),
            [
                1.0, 1.0, 1.0, 1.0, 0.0, //
                0.0, 0.0, 0.0, 0.0, 1.0
            ]
        );
    }
}
