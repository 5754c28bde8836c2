//! Figures of merit for trained models: [`binary`] for scores of a yes/no outcome (F1-tuned
//! cut-offs, ranking quality, calibration), [`classes`] for predicted labels (accuracy, per-label
//! precision, recall and F1, confusion), [`regression`] for predicted amounts.

pub mod binary;
pub mod classes;
pub mod regression;
