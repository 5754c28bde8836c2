//! How the labels of each head spread over the texts of every other label: for example, each
//! need with its share of negative sentiment. Counts only, so memory does not grow with the
//! input.

use std::collections::BTreeMap;

use serde::Serialize;

/// A label something else is crossed with: a taxonomy label (`group` = `habits`, `needs`...) or
/// another head's label (`group` = the head's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowLabel {
    /// Taxonomy group or head name.
    pub group: String,
    /// Label name.
    pub label: String,
}

/// One head's labels counted over all texts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelCount {
    /// Label name.
    pub label: String,
    /// Texts carrying it.
    pub count: usize,
    /// `count` over the texts the head scored.
    pub share: f64,
}

/// One head's labels among the texts carrying one other label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossRow {
    /// Group of the other label.
    pub group: String,
    /// The other label.
    pub label: String,
    /// Texts carrying it.
    pub texts: usize,
    /// Per head label, the share of those texts carrying it.
    pub shares: BTreeMap<String, f64>,
    /// Per head label, how many of those texts carry it.
    pub counts: BTreeMap<String, usize>,
}

/// What `analyze` reports about one head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadSummary {
    /// Head name.
    pub name: String,
    /// Texts scored (non-empty).
    pub texts: usize,
    /// Its labels over all texts, in label order.
    pub labels: Vec<LabelCount>,
    /// Its labels within every other label.
    pub by_label: Vec<CrossRow>,
}

/// Accumulates [`HeadSummary`]s one text at a time.
pub struct CrossingBuilder {
    heads: Vec<(String, Vec<String>)>,
    rows: Vec<RowLabel>,
    texts: usize,
    totals: Vec<Vec<usize>>,
    row_texts: Vec<usize>,
    /// [head][row][head label]
    cells: Vec<Vec<Vec<usize>>>,
}

impl CrossingBuilder {
    /// Crosses every head (name, labels) with `rows` (taxonomy labels); the heads' own labels
    /// are added as rows, so heads are crossed with each other too (not with themselves).
    pub fn new(heads: Vec<(String, Vec<String>)>, mut rows: Vec<RowLabel>) -> Self {
        for (name, labels) in &heads {
            rows.extend(labels.iter().map(|l| RowLabel { group: name.clone(), label: l.clone() }));
        }
        let cells = heads.iter().map(|(_, l)| vec![vec![0; l.len()]; rows.len()]).collect();
        Self {
            totals: heads.iter().map(|(_, l)| vec![0; l.len()]).collect(),
            row_texts: vec![0; rows.len()],
            cells,
            heads,
            rows,
            texts: 0,
        }
    }

    /// Counts one text: `taxonomy` holds which of the taxonomy rows it carries (in the order
    /// given to [`CrossingBuilder::new`]), `heads[h]` the label indices head `h` assigned.
    pub fn add(&mut self, taxonomy: &[bool], heads: &[Vec<usize>]) {
        self.texts += 1;
        let mut on: Vec<usize> =
            taxonomy.iter().enumerate().filter(|(_, a)| **a).map(|(i, _)| i).collect();
        let mut offset = taxonomy.len();
        for (h, assigned) in heads.iter().enumerate() {
            on.extend(assigned.iter().map(|&l| offset + l));
            offset += self.heads[h].1.len();
        }
        for &r in &on {
            self.row_texts[r] += 1;
        }
        for (h, assigned) in heads.iter().enumerate() {
            for &l in assigned {
                self.totals[h][l] += 1;
            }
            for &r in &on {
                if self.rows[r].group == self.heads[h].0 {
                    continue;
                }
                for &l in assigned {
                    self.cells[h][r][l] += 1;
                }
            }
        }
    }

    /// Finishes one summary per head.
    pub fn finish(self) -> Vec<HeadSummary> {
        let share = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        self.heads
            .iter()
            .enumerate()
            .map(|(h, (name, labels))| {
                let by_label = self
                    .rows
                    .iter()
                    .enumerate()
                    .filter(|(_, row)| &row.group != name)
                    .map(|(r, row)| {
                        let texts = self.row_texts[r];
                        let cell = &self.cells[h][r];
                        CrossRow {
                            group: row.group.clone(),
                            label: row.label.clone(),
                            texts,
                            shares: labels
                                .iter()
                                .zip(cell)
                                .map(|(l, &c)| (l.clone(), share(c, texts)))
                                .collect(),
                            counts: labels.iter().zip(cell).map(|(l, &c)| (l.clone(), c)).collect(),
                        }
                    })
                    .collect();
                HeadSummary {
                    name: name.clone(),
                    texts: self.texts,
                    labels: labels
                        .iter()
                        .zip(&self.totals[h])
                        .map(|(l, &c)| LabelCount {
                            label: l.clone(),
                            count: c,
                            share: share(c, self.texts),
                        })
                        .collect(),
                    by_label,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_labels_are_counted_within_taxonomy_labels_and_other_heads() {
        let rows = vec![RowLabel { group: "needs".into(), label: "lower_prices".into() }];
        let heads = vec![
            ("sentiment".to_string(), vec!["negative".to_string(), "positive".to_string()]),
            ("topic".to_string(), vec!["price".to_string()]),
        ];
        let mut b = CrossingBuilder::new(heads, rows);
        b.add(&[true], &[vec![0], vec![0]]);
        b.add(&[true], &[vec![0], vec![]]);
        b.add(&[true], &[vec![1], vec![0]]);
        b.add(&[false], &[vec![1], vec![]]);
        let s = b.finish();
        let sentiment = &s[0];
        assert_eq!(sentiment.texts, 4);
        assert_eq!(sentiment.labels[0].count, 3 - 1);
        let need = &sentiment.by_label[0];
        assert_eq!((need.label.as_str(), need.texts), ("lower_prices", 3));
        assert!((need.shares["negative"] - 2.0 / 3.0).abs() < 1e-9);
        // Crossed with the other head, never with its own labels.
        assert!(sentiment.by_label.iter().all(|r| r.group != "sentiment"));
        let price = sentiment.by_label.iter().find(|r| r.label == "price").unwrap();
        assert_eq!((price.texts, price.counts["negative"], price.counts["positive"]), (2, 1, 1));
    }
}
