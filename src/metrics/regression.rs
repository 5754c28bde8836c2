//! Metrics of predicted amounts against true amounts.
