//! Streaming rows through the encoder a window at a time, so memory stays bounded whatever the
//! input size.
//!
//! Rows are read in windows of [`DEFAULT_WINDOW_ROWS`]; within a window the embedder sorts texts
//! by length, which is where most of the padding saving comes from. Blank texts are not embedded:
//! they come back with no vector so every row can still be written, in input order.

use crate::embed::{EmbedError, Embedder};
use crate::input::{InputError, Reader, Record};

/// Rows read and embedded together.
pub const DEFAULT_WINDOW_ROWS: usize = 2048;

/// What can stop a stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading the input failed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// One input row and its embedding, `None` when its text is blank.
#[derive(Debug, Clone)]
pub struct EmbeddedRow {
    /// The row as read.
    pub record: Record,
    /// Its vector, or `None` for a blank text.
    pub embedding: Option<Vec<f32>>,
}

/// A window of rows in input order.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Rows in input order.
    pub rows: Vec<EmbeddedRow>,
    /// Texts in this window that were truncated.
    pub truncated: usize,
}

/// Iterates over windows of embedded rows.
pub struct EmbeddedWindows<'a> {
    reader: Reader,
    embedder: &'a Embedder,
    window_rows: usize,
    progress: Box<dyn FnMut(usize) + 'a>,
    done: bool,
}

impl<'a> EmbeddedWindows<'a> {
    /// Streams `reader` through `embedder`; `progress` hears the number of rows finished after
    /// each batch (blank rows count as finished when their window is read).
    pub fn new(
        reader: Reader,
        embedder: &'a Embedder,
        progress: Box<dyn FnMut(usize) + 'a>,
    ) -> Self {
        Self { reader, embedder, window_rows: DEFAULT_WINDOW_ROWS, progress, done: false }
    }

    /// Sets the number of rows per window (at least 1).
    #[must_use]
    pub fn with_window_rows(mut self, rows: usize) -> Self {
        self.window_rows = rows.max(1);
        self
    }

    fn next_window(&mut self) -> Result<Option<Window>, StreamError> {
        let mut records = Vec::with_capacity(self.window_rows);
        for record in self.reader.by_ref() {
            records.push(record?);
            if records.len() == self.window_rows {
                break;
            }
        }
        if records.is_empty() {
            return Ok(None);
        }
        let texts: Vec<&str> =
            records.iter().filter(|r| !r.is_blank()).map(|r| r.text.as_str()).collect();
        (self.progress)(records.len() - texts.len());
        let embedded = self.embedder.embed_with_progress(&texts, &mut *self.progress)?;
        let mut vectors = embedded.rows();
        let rows = records
            .into_iter()
            .map(|record| {
                let embedding = if record.is_blank() {
                    None
                } else {
                    Some(vectors.next().expect("one vector per non-blank text").to_vec())
                };
                EmbeddedRow { record, embedding }
            })
            .collect();
        Ok(Some(Window { rows, truncated: embedded.truncated }))
    }
}

impl Iterator for EmbeddedWindows<'_> {
    type Item = Result<Window, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_window().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
