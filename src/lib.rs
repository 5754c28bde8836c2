//! habitlens reads what consumers write (reviews, tickets, survey answers) and tells what they
//! habitually do and what they need.
//!
//! The pipeline:
//! 1. [`input`] reads rows of text from CSV, JSONL or plain text, naming file, row and column
//!    on bad input;
//! 2. [`model`] finds a sentence-transformers model (a folder or a Hugging Face Hub id) and
//!    [`embed`] turns texts into vectors with a BERT encoder on candle;
//! 3. [`taxonomy`] and [`zeroshot`] score each text against labelled phrases of habits and needs;
//! 4. [`summary`] counts labels and keeps representative quotes; [`output`] writes results
//!    atomically.

#![warn(missing_docs)]

pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod csv_watch;
pub mod embed;
pub mod finetune;
pub mod heads;
pub mod input;
pub mod metrics;
pub mod mlp;
pub mod model;
pub mod output;
pub mod purchase;
pub mod rng;
pub mod stream;
pub mod summary;
pub mod taxonomy;
pub mod zeroshot;

/// Exit code for an error: 2 when the input or the way habitlens was called is at fault, 1 for
/// anything unexpected.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let user_fault = err.chain().any(|cause| {
        cause.is::<input::InputError>()
            || cause.is::<taxonomy::TaxonomyError>()
            || cause.is::<model::ModelError>()
            || cause.is::<commands::UsageError>()
            || cause.downcast_ref::<heads::HeadError>().is_some_and(heads::HeadError::is_user_fault)
            || matches!(cause.downcast_ref(), Some(e) if purchase::PurchaseError::is_user_fault(e))
            || matches!(cause.downcast_ref(), Some(stream::StreamError::Input(_)))
    });
    if user_fault { 2 } else { 1 }
}
