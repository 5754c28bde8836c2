//! What each column holds: inferred from the training file, or forced with `--numeric`,
//! `--categorical` and `--text-column`; and how the target column reads as a yes/no outcome or
//! an amount.

use serde::{Deserialize, Serialize};

use super::PurchaseError;
use super::table::{Table, is_missing, list_columns};

/// Share of non-missing cells that must parse as numbers for a column to be inferred numeric;
/// the other cells are then reported as errors rather than silently turning the column into
/// categories.
const NUMERIC_SHARE: f64 = 0.9;

/// The kind of an input column, which decides how it becomes features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Numbers: standardised (after `log1p` when heavy-tailed).
    Numeric,
    /// Yes/no values (`TRUE`/`FALSE`, `yes`/`no`): one 0/1 feature.
    Boolean,
    /// Labels: one-hot, with buckets for unknown and missing values.
    Categorical,
    /// Free text: embedded with the sentence transformer.
    Text,
}

impl ColumnKind {
    /// The name printed in the schema table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Numeric => "numeric",
            Self::Boolean => "boolean",
            Self::Categorical => "categorical",
            Self::Text => "text",
        }
    }
}

/// An input column and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// Its kind.
    pub kind: ColumnKind,
    /// Whether the kind was forced by an option rather than inferred.
    pub forced: bool,
}

/// Which columns play which role, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    /// The target column.
    pub target: String,
    /// The id column, not a feature.
    pub id: Option<String>,
    /// Columns forced numeric.
    pub numeric: Vec<String>,
    /// Columns forced categorical (integer-coded categories, say).
    pub categorical: Vec<String>,
    /// The free-text column, if any.
    pub text: Option<String>,
    /// Columns left out of the model.
    pub ignore: Vec<String>,
}

/// Parses a yes/no cell: `true`/`false`, `yes`/`no`, `t`/`f`, `y`/`n` in any case.
pub fn parse_bool(cell: &str) -> Option<bool> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "t" | "y" => Some(true),
        "false" | "no" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Parses a finite number.
pub fn parse_number(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The kind of each input column (every column but the target, the id and the ignored ones),
/// in file order.
///
/// # Errors
/// Fails when a named column does not exist, or one column is given two roles.
pub fn infer_columns(table: &Table, roles: &Roles) -> Result<Vec<ColumnSpec>, PurchaseError> {
    // Every named column must exist and have one role only.
    let mut named: Vec<(&str, &str)> = vec![(roles.target.as_str(), "--target")];
    named.extend(roles.id.iter().map(|c| (c.as_str(), "--id-column")));
    named.extend(roles.text.iter().map(|c| (c.as_str(), "--text-column")));
    named.extend(roles.numeric.iter().map(|c| (c.as_str(), "--numeric")));
    named.extend(roles.categorical.iter().map(|c| (c.as_str(), "--categorical")));
    named.extend(roles.ignore.iter().map(|c| (c.as_str(), "--ignore")));
    for (i, (column, flag)) in named.iter().enumerate() {
        table.require(column, flag)?;
        if let Some((_, other)) = named[..i].iter().find(|(c, _)| c == column) {
            return Err(PurchaseError::ConflictingRoles {
                column: column.to_string(),
                first: other.to_string(),
                second: flag.to_string(),
            });
        }
    }

    let mut specs = Vec::new();
    for (index, name) in table.headers.iter().enumerate() {
        let is = |c: &Option<String>| c.as_deref() == Some(name.as_str());
        if *name == roles.target || is(&roles.id) || roles.ignore.contains(name) {
            continue;
        }
        let (kind, forced) = if is(&roles.text) {
            (ColumnKind::Text, true)
        } else if roles.numeric.contains(name) {
            (ColumnKind::Numeric, true)
        } else if roles.categorical.contains(name) {
            (ColumnKind::Categorical, true)
        } else {
            (infer_kind(table.values(index)), false)
        };
        specs.push(ColumnSpec { name: name.clone(), kind, forced });
    }
    if specs.is_empty() {
        return Err(PurchaseError::NoFeatures {
            file: table.file.clone(),
            available: list_columns(&table.headers),
        });
    }
    Ok(specs)
}

/// Infers the kind of a column from its cells: yes/no values are boolean, mostly numbers is
/// numeric, anything else categorical. A column with no value at all is categorical (it only
/// fills the missing bucket).
fn infer_kind<'a>(cells: impl Iterator<Item = &'a str>) -> ColumnKind {
    let (mut present, mut numbers, mut bools) = (0usize, 0usize, 0usize);
    for cell in cells.filter(|c| !is_missing(c)) {
        present += 1;
        numbers += usize::from(parse_number(cell).is_some());
        bools += usize::from(parse_bool(cell).is_some());
    }
    if present == 0 {
        ColumnKind::Categorical
    } else if bools == present {
        ColumnKind::Boolean
    } else if numbers as f64 >= NUMERIC_SHARE * present as f64 {
        ColumnKind::Numeric
    } else {
        ColumnKind::Categorical
    }
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// A yes/no outcome (will this visitor buy): a probability and a decision.
    Classify,
    /// An amount (how much will this customer spend).
    Regress,
}

/// The two values of a yes/no target and which one is the positive outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryLabels {
    /// The value meaning yes (bought).
    pub positive: String,
    /// The value meaning no.
    pub negative: String,
}

impl BinaryLabels {
    /// Reads the target of every row; `positive` names the positive value when it cannot be
    /// told (two values that are not yes/no or 1/0).
    ///
    /// # Errors
    /// Fails on a missing target (naming the row), a target with one value or more than two,
    /// or a positive value that does not occur.
    pub fn infer(
        table: &Table,
        target: usize,
        positive: Option<&str>,
    ) -> Result<Self, PurchaseError> {
        let column = &table.headers[target];
        let mut values: Vec<(String, usize)> = Vec::new();
        for (i, cell) in table.values(target).enumerate() {
            if is_missing(cell) {
                return Err(PurchaseError::MissingTarget {
                    file: table.file.clone(),
                    row: table.row_number(i),
                    column: column.clone(),
                });
            }
            let cell = cell.trim();
            match values.iter_mut().find(|(v, _)| v == cell) {
                Some((_, n)) => *n += 1,
                None => values.push((cell.to_string(), 1)),
            }
        }
        match values.len() {
            1 => {
                return Err(PurchaseError::OneClass {
                    file: table.file.clone(),
                    column: column.clone(),
                    value: values[0].0.clone(),
                });
            }
            2 => {}
            n => {
                values.sort_by_key(|v| std::cmp::Reverse(v.1));
                let hint = if values.iter().all(|(v, _)| parse_number(v).is_some()) {
                    "pass `--task regress` to predict an amount"
                } else if values.iter().all(|(v, _)| parse_bool(v).is_some()) {
                    "the yes/no values are spelled more than one way (the target is read as \
                     written); write each one the same way throughout"
                } else {
                    "a yes/no model needs a target with exactly two values; `--task regress` \
                     needs numbers"
                };
                return Err(PurchaseError::TooManyClasses {
                    file: table.file.clone(),
                    column: column.clone(),
                    count: n,
                    more: if n > 5 { ", ..." } else { "" },
                    hint,
                    examples: values
                        .iter()
                        .take(5)
                        .map(|(v, _)| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let (a, b) = (values[0].0.clone(), values[1].0.clone());
        let is_yes = |v: &str| parse_bool(v).or(parse_number(v).map(|x| x == 1.0));
        let is_no = |v: &str| parse_bool(v).map(|b| !b).or(parse_number(v).map(|x| x == 0.0));
        let positive = match positive {
            Some(p) if p == a || p == b => p.to_string(),
            Some(p) => {
                return Err(PurchaseError::UnknownPositive {
                    file: table.file.clone(),
                    column: column.clone(),
                    positive: p.to_string(),
                    values: format!("`{a}`, `{b}`"),
                });
            }
            None if is_yes(&a) == Some(true) && is_no(&b) == Some(true) => a.clone(),
            None if is_yes(&b) == Some(true) && is_no(&a) == Some(true) => b.clone(),
            None => {
                return Err(PurchaseError::AmbiguousPositive {
                    file: table.file.clone(),
                    column: column.clone(),
                    values: format!("`{a}`, `{b}`"),
                });
            }
        };
        let negative = if positive == a { b } else { a };
        Ok(Self { positive, negative })
    }

    /// Whether `cell` is the positive value; `None` for a value that is neither label.
    pub fn read(&self, cell: &str) -> Option<bool> {
        let cell = cell.trim();
        if cell == self.positive {
            Some(true)
        } else if cell == self.negative {
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        Table::from_reader("t.csv".into(), text.as_bytes(), b',').unwrap()
    }

    #[test]
    fn kinds_are_inferred_and_forced() {
        let t = table("n,b,c,code,y\n1.5,TRUE,Feb,1,0\n,FALSE,Mar,2,1\n3,true,,3,0\n");
        let roles =
            Roles { target: "y".into(), categorical: vec!["code".into()], ..Default::default() };
        let kinds: Vec<_> =
            infer_columns(&t, &roles).unwrap().into_iter().map(|s| (s.name, s.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("n".to_string(), ColumnKind::Numeric),
                ("b".to_string(), ColumnKind::Boolean),
                ("c".to_string(), ColumnKind::Categorical),
                ("code".to_string(), ColumnKind::Categorical),
            ]
        );
    }

    #[test]
    fn a_few_words_in_numbers_stay_numeric_so_they_can_be_reported() {
        let cells = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "ten"];
        assert_eq!(infer_kind(cells.into_iter()), ColumnKind::Numeric);
        assert_eq!(infer_kind(["1", "a", "b"].into_iter()), ColumnKind::Categorical);
    }

    #[test]
    fn unknown_and_doubly_named_columns_are_refused() {
        let t = table("a,y\n1,0\n");
        let roles = Roles { target: "y".into(), numeric: vec!["b".into()], ..Default::default() };
        assert!(matches!(infer_columns(&t, &roles), Err(PurchaseError::MissingColumn { .. })));
        let roles = Roles { target: "y".into(), numeric: vec!["y".into()], ..Default::default() };
        assert!(matches!(infer_columns(&t, &roles), Err(PurchaseError::ConflictingRoles { .. })));
    }

    #[test]
    fn binary_labels_find_the_positive_value() {
        let t = table("y\nFALSE\nTRUE\nFALSE\n");
        let labels = BinaryLabels::infer(&t, 0, None).unwrap();
        assert_eq!((labels.positive.as_str(), labels.negative.as_str()), ("TRUE", "FALSE"));
        let t = table("y\n1\n0\n");
        assert_eq!(BinaryLabels::infer(&t, 0, None).unwrap().positive, "1");
        let t = table("y\nbuy\nleave\n");
        assert!(matches!(
            BinaryLabels::infer(&t, 0, None),
            Err(PurchaseError::AmbiguousPositive { .. })
        ));
        assert_eq!(BinaryLabels::infer(&t, 0, Some("buy")).unwrap().negative, "leave");
    }

    #[test]
    fn bad_targets_are_named() {
        let msg =
            BinaryLabels::infer(&table("x,y\n1,\"\"\n2,1\n"), 1, None).unwrap_err().to_string();
        assert!(msg.contains("row 1") && msg.contains("`y`"), "{msg}");
        let msg = BinaryLabels::infer(&table("y\n1\n1\n"), 0, None).unwrap_err().to_string();
        assert!(msg.contains("one value"), "{msg}");
        let err = BinaryLabels::infer(&table("y\na\nb\nc\n"), 0, None).unwrap_err();
        assert!(matches!(err, PurchaseError::TooManyClasses { count: 3, .. }));
    }
}
