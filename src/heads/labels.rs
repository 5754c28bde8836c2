//! Reading labels out of a label column and checking labelled data before training.
//!
//! A single-label cell holds one label; a multi-label cell holds labels split by a separator
//! (`;` by default). [`LabelledData::check`] turns the rows of a file into the rows a head is
//! trained on, and reports every row it cannot use and why: nothing is dropped silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::HeadError;

/// Default separator of labels in a multi-label cell.
pub const DEFAULT_SEPARATOR: &str = ";";

/// Rows named in a message before "and N more".
const ROWS_SHOWN: usize = 10;

/// What a head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Exactly one label per text (softmax, cross-entropy).
    SingleLabel,
    /// Any number of labels per text (one sigmoid per label, binary cross-entropy).
    MultiLabel,
}

/// The labels of one cell, trimmed, without empty parts or repeats, in order of appearance.
pub fn parse_cell(cell: &str, kind: TaskKind, separator: &str) -> Vec<String> {
    match kind {
        TaskKind::SingleLabel => {
            let label = cell.trim();
            if label.is_empty() { vec![] } else { vec![label.to_string()] }
        }
        TaskKind::MultiLabel => {
            let mut labels: Vec<String> = Vec::new();
            for part in cell.split(separator).map(str::trim).filter(|p| !p.is_empty()) {
                if !labels.iter().any(|l| l == part) {
                    labels.push(part.to_string());
                }
            }
            labels
        }
    }
}

/// One row of the input as read: row number, text and label cell.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// 1-based row number in the file.
    pub row: usize,
    /// The text.
    pub text: String,
    /// The label cell.
    pub cell: String,
}

/// Rows left out of training and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Rows whose text is empty or blank.
    pub blank_text: Vec<usize>,
    /// Rows whose label cell is empty.
    pub empty_label: Vec<usize>,
}

impl Skipped {
    /// Number of rows skipped.
    pub fn len(&self) -> usize {
        self.blank_text.len() + self.empty_label.len()
    }

    /// Whether no row was skipped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages about the skipped rows, each naming the rows and what to do.
    pub fn messages(
        &self,
        kind: TaskKind,
        file: &str,
        text_column: &str,
        label_column: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if !self.blank_text.is_empty() {
            out.push(format!(
                "skipped {} row(s) of `{file}` with an empty `{text_column}`: {}; fill in the \
                 text or remove the rows",
                self.blank_text.len(),
                list_rows(&self.blank_text)
            ));
        }
        if !self.empty_label.is_empty() {
            let what = match kind {
                TaskKind::SingleLabel => "give each a label or remove the rows",
                TaskKind::MultiLabel => {
                    "an empty cell is read as unlabelled, not as 'no label': write a label \
                     such as `none` for texts that carry none, or remove the rows"
                }
            };
            out.push(format!(
                "skipped {} row(s) of `{file}` with an empty `{label_column}`: {}; {what}",
                self.empty_label.len(),
                list_rows(&self.empty_label)
            ));
        }
        out
    }
}

/// Labelled rows ready for training: texts, label indices, and the label names in order.
#[derive(Debug, Clone)]
pub struct LabelledData {
    /// Task kind.
    pub kind: TaskKind,
    /// Label names, sorted, so the order does not depend on the row order.
    pub labels: Vec<String>,
    /// Row numbers of the rows used, in file order.
    pub rows: Vec<usize>,
    /// Texts of the rows used.
    pub texts: Vec<String>,
    /// Per row used, the indices of its labels in [`LabelledData::labels`] (one for single-label).
    pub targets: Vec<Vec<u32>>,
    /// Rows left out.
    pub skipped: Skipped,
    /// Warnings about the data that did not stop training (labels with one example, ...).
    pub warnings: Vec<String>,
}

impl LabelledData {
    /// Checks `rows` read from `file` (label column `column`) and keeps the usable ones.
    ///
    /// Rows with a blank text or an empty label cell are skipped and listed in
    /// [`LabelledData::skipped`]. A label seen only once gives a warning.
    ///
    /// # Errors
    /// Fails when no row has a text, no row has a label, or fewer than two labels occur
    /// (single-label).
    pub fn check(
        rows: Vec<RawRow>,
        kind: TaskKind,
        separator: &str,
        file: &str,
        column: &str,
    ) -> Result<Self, HeadError> {
        let total = rows.len();
        if total == 0 {
            return Err(HeadError::NoRows { file: file.to_string() });
        }
        let (kept, skipped) = partition(rows, kind, separator);
        if skipped.blank_text.len() == total {
            return Err(HeadError::NoText { file: file.to_string(), rows: total });
        }
        if kept.is_empty() {
            return Err(HeadError::NoLabel {
                file: file.to_string(),
                column: column.to_string(),
                rows: total,
            });
        }

        let mut counts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (row, _, labels) in &kept {
            for l in labels {
                counts.entry(l.as_str()).or_default().push(*row);
            }
        }
        if kind == TaskKind::SingleLabel && counts.len() < 2 {
            let only = counts.keys().next().copied().unwrap_or_default().to_string();
            return Err(HeadError::OneClass {
                file: file.to_string(),
                column: column.to_string(),
                label: only,
            });
        }
        let mut warnings = Vec::new();
        for (label, rows) in &counts {
            if rows.len() == 1 {
                warnings.push(format!(
                    "label `{label}` in column `{column}` of `{file}` has a single example (row \
                     {}): the head can hardly learn it and it cannot be validated; add examples \
                     or merge it into another label",
                    rows[0]
                ));
            }
        }
        if kind == TaskKind::MultiLabel {
            for (label, rows) in &counts {
                if rows.len() == kept.len() {
                    warnings.push(format!(
                        "label `{label}` in column `{column}` of `{file}` is on every row: the \
                         head will learn to always predict it"
                    ));
                }
            }
        }
        let labels: Vec<String> = counts.keys().map(|l| l.to_string()).collect();
        let index = |l: &str| labels.binary_search_by(|x| x.as_str().cmp(l)).expect("known") as u32;
        let mut out = Self {
            kind,
            rows: Vec::with_capacity(kept.len()),
            texts: Vec::with_capacity(kept.len()),
            targets: Vec::with_capacity(kept.len()),
            labels: Vec::new(),
            skipped,
            warnings,
        };
        for (row, text, row_labels) in kept {
            out.rows.push(row);
            out.texts.push(text);
            out.targets.push(row_labels.iter().map(|l| index(l)).collect());
        }
        out.labels = labels;
        Ok(out)
    }

    /// Number of rows used.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether no row is used.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Messages about skipped rows, each naming the rows and what to do.
    pub fn skip_messages(&self, file: &str, text_column: &str, label_column: &str) -> Vec<String> {
        self.skipped.messages(self.kind, file, text_column, label_column)
    }

    /// The targets of the rows in `indices` as a one-hot (multi-label: many-hot) 0/1 matrix.
    pub fn target_matrix(&self, indices: &[usize]) -> Vec<f32> {
        let width = self.labels.len();
        let mut m = vec![0f32; indices.len() * width];
        for (r, &i) in indices.iter().enumerate() {
            for &l in &self.targets[i] {
                m[r * width + l as usize] = 1.0;
            }
        }
        m
    }
}

/// A row kept by [`partition`]: row number, text and labels.
pub type KeptRow = (usize, String, Vec<String>);

/// Splits rows into those with a text and at least one label, and the rest.
pub fn partition(rows: Vec<RawRow>, kind: TaskKind, separator: &str) -> (Vec<KeptRow>, Skipped) {
    let mut skipped = Skipped::default();
    let mut kept = Vec::new();
    for row in rows {
        let labels = parse_cell(&row.cell, kind, separator);
        if row.text.trim().is_empty() {
            skipped.blank_text.push(row.row);
        } else if labels.is_empty() {
            skipped.empty_label.push(row.row);
        } else {
            kept.push((row.row, row.text, labels));
        }
    }
    (kept, skipped)
}

/// `rows 3, 7, 9` or `rows 3, 7, ... and 12 more`.
pub fn list_rows(rows: &[usize]) -> String {
    let shown: Vec<String> = rows.iter().take(ROWS_SHOWN).map(usize::to_string).collect();
    let more = rows.len().saturating_sub(ROWS_SHOWN);
    let word = if rows.len() == 1 { "row" } else { "rows" };
    if more > 0 {
        format!("{word} {} and {more} more", shown.join(", "))
    } else {
        format!("{word} {}", shown.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(cells: &[(&str, &str)]) -> Vec<RawRow> {
        cells
            .iter()
            .enumerate()
            .map(|(i, (t, c))| RawRow { row: i + 1, text: t.to_string(), cell: c.to_string() })
            .collect()
    }

    #[test]
    fn cells_are_trimmed_split_and_deduplicated() {
        assert_eq!(parse_cell("  pos ", TaskKind::SingleLabel, ";"), ["pos"]);
        assert!(parse_cell("   ", TaskKind::SingleLabel, ";").is_empty());
        assert_eq!(parse_cell("a; b;;a ;", TaskKind::MultiLabel, ";"), ["a", "b"]);
        assert_eq!(parse_cell("a|b", TaskKind::MultiLabel, "|"), ["a", "b"]);
        // A single-label cell keeps the separator as part of the label.
        assert_eq!(parse_cell("a;b", TaskKind::SingleLabel, ";"), ["a;b"]);
    }

    #[test]
    fn blank_texts_and_empty_labels_are_skipped_and_listed() {
        let rows = raw(&[("good", "pos"), ("", "neg"), ("bad", " "), ("meh", "neg")]);
        let d = LabelledData::check(rows, TaskKind::SingleLabel, ";", "f.csv", "label").unwrap();
        assert_eq!(d.rows, [1, 4]);
        assert_eq!(d.labels, ["neg", "pos"]);
        assert_eq!(d.targets, [vec![1], vec![0]]);
        assert_eq!(d.skipped.blank_text, [2]);
        assert_eq!(d.skipped.empty_label, [3]);
        let msgs = d.skip_messages("f.csv", "text", "label");
        assert!(msgs[0].contains("row 2") && msgs[1].contains("row 3"), "{msgs:?}");
    }

    #[test]
    fn one_class_no_text_and_no_label_are_errors() {
        let one = raw(&[("a", "x"), ("b", "x")]);
        let err = LabelledData::check(one, TaskKind::SingleLabel, ";", "f", "l").unwrap_err();
        assert!(matches!(err, HeadError::OneClass { ref label, .. } if label == "x"), "{err}");
        let blank = raw(&[("", "x"), (" ", "y")]);
        let err = LabelledData::check(blank, TaskKind::SingleLabel, ";", "f", "l").unwrap_err();
        assert!(matches!(err, HeadError::NoText { rows: 2, .. }), "{err}");
        let unlabelled = raw(&[("a", ""), ("b", "")]);
        let err = LabelledData::check(unlabelled, TaskKind::MultiLabel, ";", "f", "l").unwrap_err();
        assert!(matches!(err, HeadError::NoLabel { .. }), "{err}");
    }

    #[test]
    fn single_example_label_warns_with_its_row() {
        let rows = raw(&[("a", "x"), ("b", "x"), ("c", "y")]);
        let d = LabelledData::check(rows, TaskKind::SingleLabel, ";", "f", "l").unwrap();
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("`y`") && d.warnings[0].contains("row 3"));
    }

    #[test]
    fn multi_label_targets_form_a_many_hot_matrix() {
        let rows = raw(&[("a", "food;service"), ("b", "price")]);
        let d = LabelledData::check(rows, TaskKind::MultiLabel, ";", "f", "l").unwrap();
        assert_eq!(d.labels, ["food", "price", "service"]);
        assert_eq!(d.target_matrix(&[0, 1]), [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn long_row_lists_are_cut() {
        let rows: Vec<usize> = (1..=13).collect();
        assert_eq!(list_rows(&rows), "rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 3 more");
        assert_eq!(list_rows(&[4]), "row 4");
    }
}
