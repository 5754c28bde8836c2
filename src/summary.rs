//! What `analyze` reports about a whole corpus: per label the count, the share of non-empty
//! texts and a few representative quotes; per group the number of texts with no label.
//!
//! Everything kept is bounded: counts, and [`QUOTES_PER_LABEL`] quotes of at most
//! [`QUOTE_CHARS`] characters per label, whatever the input size.

use serde::Serialize;

use crate::zeroshot::{LabelRef, Thresholds};

/// Quotes kept per label.
pub const QUOTES_PER_LABEL: usize = 3;

/// Longest quote kept, in characters; longer texts are cut with an ellipsis.
pub const QUOTE_CHARS: usize = 240;

/// A text quoted as an example of a label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quote {
    /// Row id.
    pub id: String,
    /// The text, possibly shortened.
    pub text: String,
    /// The label's score for this text.
    pub score: f32,
}

/// Figures for one label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelSummary {
    /// Group name.
    pub group: String,
    /// Label name.
    pub label: String,
    /// Texts carrying the label.
    pub count: usize,
    /// `count` over the number of non-empty texts.
    pub share: f64,
    /// Decision threshold used for this label.
    pub threshold: f32,
    /// Highest-scoring texts carrying the label, best first.
    pub quotes: Vec<Quote>,
}

/// Figures for one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    /// Group name.
    pub group: String,
    /// Non-empty texts carrying no label of the group.
    pub unlabelled: usize,
    /// `unlabelled` over the number of non-empty texts.
    pub unlabelled_share: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Input rows, empty ones included.
    pub rows: usize,
    /// Rows whose text is empty or blank.
    pub empty: usize,
    /// Texts longer than the model's limit, embedded from their beginning only.
    pub truncated: usize,
    /// How labels were decided.
    pub thresholds: Thresholds,
    /// Per label, in taxonomy order.
    pub labels: Vec<LabelSummary>,
    /// Per group, in taxonomy order.
    pub groups: Vec<GroupSummary>,
}

/// Accumulates a [`Summary`] one row at a time.
pub struct SummaryBuilder {
    labels: Vec<LabelRef>,
    groups: Vec<String>,
    counts: Vec<usize>,
    quotes: Vec<Vec<Quote>>,
    unlabelled: Vec<usize>,
    rows: usize,
    empty: usize,
    truncated: usize,
}

impl SummaryBuilder {
    /// Starts a summary over `labels` (groups are taken in order of first appearance).
    pub fn new(labels: &[LabelRef]) -> Self {
        let mut groups: Vec<String> = Vec::new();
        for l in labels {
            if !groups.contains(&l.group) {
                groups.push(l.group.clone());
            }
        }
        Self {
            counts: vec![0; labels.len()],
            quotes: vec![Vec::new(); labels.len()],
            unlabelled: vec![0; groups.len()],
            labels: labels.to_vec(),
            groups,
            rows: 0,
            empty: 0,
            truncated: 0,
        }
    }

    /// Counts an empty row.
    pub fn add_empty(&mut self) {
        self.rows += 1;
        self.empty += 1;
    }

    /// Adds texts that were truncated before embedding.
    pub fn add_truncated(&mut self, n: usize) {
        self.truncated += n;
    }

    /// Counts a scored row: `scores` and `assigned` are in label order.
    pub fn add(&mut self, id: &str, text: &str, scores: &[f32], assigned: &[bool]) {
        self.rows += 1;
        for (g, group) in self.groups.iter().enumerate() {
            let any = self.labels.iter().zip(assigned).any(|(l, &a)| a && &l.group == group);
            if !any {
                self.unlabelled[g] += 1;
            }
        }
        for (i, (&score, &on)) in scores.iter().zip(assigned).enumerate() {
            if !on {
                continue;
            }
            self.counts[i] += 1;
            let quotes = &mut self.quotes[i];
            let weakest = quotes.last().map_or(f32::NEG_INFINITY, |q| q.score);
            if quotes.len() < QUOTES_PER_LABEL || score > weakest {
                let text = shorten(text.trim());
                let at = quotes.iter().position(|q| q.score < score).unwrap_or(quotes.len());
                quotes.insert(at, Quote { id: id.to_string(), text, score });
                quotes.truncate(QUOTES_PER_LABEL);
            }
        }
    }

    /// Finishes the report.
    pub fn finish(self, thresholds: Thresholds) -> Summary {
        let non_empty = self.rows - self.empty;
        let share = |n: usize| if non_empty == 0 { 0.0 } else { n as f64 / non_empty as f64 };
        let labels = self
            .labels
            .iter()
            .zip(self.counts)
            .zip(self.quotes)
            .zip(&thresholds.values)
            .map(|(((l, count), quotes), &threshold)| LabelSummary {
                group: l.group.clone(),
                label: l.name.clone(),
                count,
                share: share(count),
                threshold,
                quotes,
            })
            .collect();
        let groups = self
            .groups
            .into_iter()
            .zip(self.unlabelled)
            .map(|(group, n)| GroupSummary { group, unlabelled: n, unlabelled_share: share(n) })
            .collect();
        Summary {
            rows: self.rows,
            empty: self.empty,
            truncated: self.truncated,
            thresholds,
            labels,
            groups,
        }
    }
}

/// Collapses white space and cuts texts longer than `max_chars` at a character boundary,
/// ending them with an ellipsis.
pub fn clip(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let cut: String = flat.chars().take(max_chars.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

fn shorten(text: &str) -> String {
    clip(text, QUOTE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zeroshot::ThresholdRule;

    fn labels() -> Vec<LabelRef> {
        ["a", "b"]
            .iter()
            .map(|n| LabelRef { group: "needs".into(), name: n.to_string() })
            .chain([LabelRef { group: "habits".into(), name: "c".into() }])
            .collect()
    }

    #[test]
    fn counts_shares_quotes_and_unlabelled() {
        let mut b = SummaryBuilder::new(&labels());
        for i in 0..5 {
            b.add(
                &i.to_string(),
                &format!("text {i}"),
                &[i as f32, 0.0, 0.0],
                &[true, false, false],
            );
        }
        b.add("x", "none", &[0.0; 3], &[false; 3]);
        b.add_empty();
        let t = Thresholds::fit(ThresholdRule::Fixed { threshold: 0.5 }, &[], 3);
        let s = b.finish(t);
        assert_eq!((s.rows, s.empty), (7, 1));
        assert_eq!(s.labels[0].count, 5);
        assert!((s.labels[0].share - 5.0 / 6.0).abs() < 1e-9);
        let ids: Vec<_> = s.labels[0].quotes.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["4", "3", "2"]);
        assert_eq!(s.groups[0].unlabelled, 1);
        assert_eq!(s.groups[1].unlabelled, 6);
    }

    #[test]
    fn long_quotes_are_cut() {
        let long = "word ".repeat(200);
        let q = shorten(&long);
        assert_eq!(q.chars().count(), QUOTE_CHARS);
        assert!(q.ends_with('…'));
    }
}
