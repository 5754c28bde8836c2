//! Metrics of predicted labels against true labels.
