//! Label taxonomies: groups of labels (habits, needs, aspects...), each label described by a few
//! phrases that say what a text carrying it sounds like.
//!
//! A taxonomy is a TOML file whose top-level arrays of tables are the groups, in file order:
//!
//! ```toml
//! [[habits]]
//! name = "deal_seeking"
//! phrases = ["I waited for a sale", "bought it with a coupon"]
//!
//! [[needs]]
//! name = "fast_delivery"
//! phrases = ["it arrived quickly", "shipping took too long"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The taxonomy shipped with habitlens (`models/taxonomy.toml`), used when none is given.
pub const DEFAULT_TAXONOMY: &str = include_str!("../models/taxonomy.toml");

/// What is wrong with a taxonomy file.
#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    /// The file cannot be read.
    #[error("cannot read taxonomy `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("taxonomy `{path}` is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The file parses but breaks a rule.
    #[error("taxonomy `{path}`: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which rule.
        problem: String,
    },
}

/// One label and the phrases that describe it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// Identifier used in outputs, e.g. `deal_seeking`.
    pub name: String,
    /// Optional human description, shown in reports.
    #[serde(default)]
    pub description: Option<String>,
    /// Example phrasings; each text is compared with these.
    pub phrases: Vec<String>,
}

/// A named group of labels, such as `habits` or `needs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name, e.g. `needs`.
    pub name: String,
    /// Labels in file order.
    pub labels: Vec<Label>,
}

/// A parsed, validated taxonomy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taxonomy {
    /// Groups in file order.
    pub groups: Vec<Group>,
}

impl Taxonomy {
    /// Reads a taxonomy file.
    ///
    /// # Errors
    /// Fails when the file cannot be read or is invalid (see [`Taxonomy::parse`]).
    pub fn from_file(path: &Path) -> Result<Self, TaxonomyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TaxonomyError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses taxonomy text; `path` is only used in messages.
    ///
    /// # Errors
    /// Fails when the text is not TOML, a top-level entry is not an array of tables, a label
    /// lacks phrases, or a label name repeats within a group.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TaxonomyError> {
        let invalid =
            |problem: String| TaxonomyError::Invalid { path: path.to_path_buf(), problem };
        let table: toml::Table = toml::from_str(text).map_err(|e| TaxonomyError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut groups = Vec::new();
        for (name, value) in table {
            let labels: Vec<Label> = value.try_into().map_err(|e: toml::de::Error| {
                invalid(format!(
                    "group `{name}` must be an array of labels ([[{name}]]): {}",
                    e.message()
                ))
            })?;
            if labels.is_empty() {
                return Err(invalid(format!("group `{name}` has no labels")));
            }
            for (i, label) in labels.iter().enumerate() {
                if label.name.trim().is_empty() {
                    return Err(invalid(format!(
                        "label {} of group `{name}` has an empty name",
                        i + 1
                    )));
                }
                if label.phrases.iter().all(|p| p.trim().is_empty()) {
                    return Err(invalid(format!(
                        "label `{}` in group `{name}` has no phrases",
                        label.name
                    )));
                }
                if labels[..i].iter().any(|l| l.name == label.name) {
                    return Err(invalid(format!(
                        "label `{}` appears twice in group `{name}`",
                        label.name
                    )));
                }
            }
            groups.push(Group { name, labels });
        }
        if groups.is_empty() {
            return Err(invalid("no groups: add at least one `[[group]]` table".to_string()));
        }
        Ok(Self { groups })
    }

    /// The taxonomy shipped with habitlens.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_TAXONOMY, Path::new("models/taxonomy.toml"))
            .expect("the shipped taxonomy is valid")
    }

    /// Number of labels over all groups.
    pub fn label_count(&self) -> usize {
        self.groups.iter().map(|g| g.labels.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_file_order() {
        let t = Taxonomy::parse(
            "[[needs]]\nname='a'\nphrases=['x']\n[[habits]]\nname='b'\nphrases=['y','z']\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let names: Vec<_> = t.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["needs", "habits"]);
        assert_eq!(t.label_count(), 2);
    }

    #[test]
    fn rejects_duplicate_labels_and_empty_phrases() {
        let dup = "[[needs]]\nname='a'\nphrases=['x']\n[[needs]]\nname='a'\nphrases=['y']\n";
        let err = Taxonomy::parse(dup, Path::new("t.toml")).unwrap_err().to_string();
        assert!(err.contains("`a` appears twice"), "{err}");
        let empty = "[[needs]]\nname='a'\nphrases=[]\n";
        let err = Taxonomy::parse(empty, Path::new("t.toml")).unwrap_err().to_string();
        assert!(err.contains("no phrases"), "{err}");
    }

    #[test]
    fn shipped_taxonomy_has_enough_habits_and_needs() {
        let t = Taxonomy::builtin();
        let size = |n: &str| t.groups.iter().find(|g| g.name == n).map_or(0, |g| g.labels.len());
        assert!(size("habits") >= 8 && size("needs") >= 10);
    }
}
