//! Watching the raw bytes of the CSV records the csv crate reads, for what it does not report.
//!
//! - A quote that is never closed: the csv crate reads it as a field running to the end of the
//!   input, so every line after it lands in one row's text and the rows in those lines are lost
//!   without a word. [`Watch`] keeps the bytes of the records being read and replays them
//!   ([`open_quote`]) to see whether the input ended inside quotes, and on which line the quote
//!   opened.
//! - The line a record starts on: the csv crate's count skips the blank lines before a record
//!   and lags by one with CRLF endings ([`Watch::record_line`]).
//!
//! Both CSV readers (texts and purchase tables) use it.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

/// The bytes read since the start of the last record: where they start in the input, and the
/// bytes.
#[derive(Debug, Default)]
struct Kept {
    start: u64,
    bytes: Vec<u8>,
    /// Whether the input has been read to its end.
    at_end: bool,
}

impl Kept {
    /// Lets go of the bytes before input offset `offset`. They are dropped once they make up
    /// half of what is kept, so that each byte is moved at most once on average rather than on
    /// every record.
    fn forget_before(&mut self, offset: u64) {
        let drop = usize::try_from(offset.saturating_sub(self.start))
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        if drop > 0 && drop >= self.bytes.len() / 2 {
            self.bytes.drain(..drop);
            self.start += drop as u64;
        }
    }

    /// The bytes from input offset `offset` on.
    fn from(&self, offset: u64) -> &[u8] {
        let skip = usize::try_from(offset.saturating_sub(self.start)).unwrap_or(usize::MAX);
        &self.bytes[skip.min(self.bytes.len())..]
    }
}

/// A reader that copies what it reads into a shared [`Kept`].
struct Tail<R> {
    inner: R,
    kept: Rc<RefCell<Kept>>,
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut kept = self.kept.borrow_mut();
        kept.bytes.extend_from_slice(&buf[..n]);
        kept.at_end |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// Watches the records a csv reader reads: where each starts, and whether a quoted field runs to
/// the end of the input. It keeps the bytes of the last records and whatever the reader has
/// read ahead, no more.
#[derive(Debug)]
pub struct Watch {
    kept: Rc<RefCell<Kept>>,
    delimiter: u8,
    /// Input offset and line of the record before the last read started (the header, at first).
    previous: (u64, u64),
    /// Input offset and line where the last read started.
    last: (u64, u64),
}

impl Watch {
    /// Wraps `inner`, the input of a csv reader with this `delimiter` and the default quote
    /// (`"`); the reader must read from the returned one.
    pub fn wrap<'a, R: Read + 'a>(inner: R, delimiter: u8) -> (Box<dyn Read + 'a>, Self) {
        let kept = Rc::new(RefCell::new(Kept::default()));
        let tail = Tail { inner, kept: Rc::clone(&kept) };
        (Box::new(tail), Self { kept, delimiter, previous: (0, 1), last: (0, 1) })
    }

    /// To be called before every read of a data record, the one that finds the end of the input
    /// too, with the reader's position: the bytes before the record read last are let go.
    pub fn record_starts(&mut self, position: &csv::Position) {
        self.previous = self.last;
        self.last = (position.byte(), position.line());
        self.kept.borrow_mut().forget_before(self.previous.0);
    }

    /// The line on which the record being read starts, past the blank lines the csv reader
    /// skips before it. (The reader's own line count lags by one with CRLF endings, rust-csv
    /// issue 395, and does not count those blank lines: the record's bytes then start with
    /// the line breaks it left out, which are counted here.)
    pub fn record_line(&self) -> u64 {
        let (start, line) = self.last;
        let kept = self.kept.borrow();
        let breaks = kept.from(start).iter().take_while(|b| matches!(b, b'\r' | b'\n'));
        line + breaks.filter(|&&b| b == b'\n').count() as u64
    }

    /// Once a read found the end of the input: the line on which a quoted field of the last
    /// record (or of the header, when there was none) opened, if it is never closed.
    pub fn open_at_end(&self) -> Option<u64> {
        let (start, line) = self.previous;
        self.open_from(start, None).map(|breaks| line + breaks)
    }

    /// After a read failed (a row with too few fields, say): the line on which a quoted field
    /// opened that runs to the end of the input, if the record that failed holds one.
    pub fn open_in_failed(&self) -> Option<u64> {
        let (start, line) = self.last;
        let kept = self.kept.borrow();
        if !kept.at_end {
            return None; // a field running to the end would have been read to the end
        }
        drop(kept);
        self.open_from(start, None).map(|breaks| line + breaks)
    }

    /// Once the header is read, with the reader's position then: whether a quoted field of the
    /// header is never closed (the whole input was then read as the header).
    pub fn header_open(&self, header_end: &csv::Position) -> bool {
        self.open_from(0, Some(header_end.byte())).is_some()
    }

    /// Line breaks before the quote that is still open at input offset `end` (at the end of
    /// what was read, without one), reading from offset `start`.
    fn open_from(&self, start: u64, end: Option<u64>) -> Option<u64> {
        let kept = self.kept.borrow();
        let bytes = kept.from(start);
        let len = end.map_or(bytes.len(), |e| {
            usize::try_from(e.saturating_sub(start)).unwrap_or(usize::MAX).min(bytes.len())
        });
        open_quote(&bytes[..len], self.delimiter, b'"')
    }
}

/// What to say of a header whose quote is never closed.
pub const HEADER_NEVER_CLOSED: &str = "a quoted field in the header is never closed, so the \
    whole file would be read as the header\nhint: close the quote, or double a quote that is \
    part of a column name (\"\")";

/// The problem to report for a quote opened on `line` and never closed.
pub fn never_closed(line: u64) -> String {
    format!(
        "a quoted field opened on line {line} is never closed, so every line after it would be \
         read as part of this row\nhint: close the quote, or double a quote that is part of the \
         text (\"\")"
    )
}

/// Where the quoted field that is still open at the end of `bytes` (the raw bytes of CSV records)
/// opened, as the number of line breaks (`\n`) before its quote; `None` when `bytes` do not end
/// inside quotes. Read as the csv crate reads it: a field is quoted when it starts with `quote`,
/// a doubled quote inside it is one quote, and a quote inside an unquoted field is an ordinary
/// character.
pub fn open_quote(bytes: &[u8], delimiter: u8, quote: u8) -> Option<u64> {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let (mut breaks, mut opened) = (0, 0);
    for &b in bytes {
        state = match state {
            State::FieldStart if b == quote => {
                opened = breaks;
                State::Quoted
            }
            State::FieldStart | State::Unquoted | State::QuoteInQuoted
                if b == delimiter || b == b'\n' || b == b'\r' =>
            {
                State::FieldStart
            }
            State::Quoted if b == quote => State::QuoteInQuoted,
            State::QuoteInQuoted if b == quote => State::Quoted,
            State::Quoted => State::Quoted,
            State::FieldStart | State::Unquoted | State::QuoteInQuoted => State::Unquoted,
        };
        breaks += u64::from(b == b'\n');
    }
    (state == State::Quoted).then_some(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_closed_quotes_are_told_apart() {
        let open = |s: &str| open_quote(s.as_bytes(), b',', b'"');
        assert_eq!(open("2,\"great screen\n3,ok\n4,good\n"), Some(0));
        assert_eq!(open("2,\"she said \"\"hi\"\"\n3,ok"), Some(0));
        assert_eq!(open("\n\n2,\"x\ny\",\"open\n3,ok"), Some(3), "line breaks before the quote");
        assert_eq!(open("2,\"great\nscreen\"\n"), None);
        assert_eq!(open("2,\"she said \"\"hi\"\"\"\n"), None);
        assert_eq!(
            open("2,a 5\" screen\n"),
            None,
            "a quote inside an unquoted field is a character"
        );
        assert_eq!(open("2,\"a\"b,c\n"), None);
        assert_eq!(open("2,\"\"\n"), None);
        assert_eq!(open("2,\""), Some(0));
        assert_eq!(open_quote(b"2;'x;y'\n", b';', b'\''), None);
    }

    /// Reads `text` as the CSV readers do: the rows read, and the line of a quote never closed.
    fn read(text: &'static str) -> (usize, Option<u64>) {
        let (input, mut watch) = Watch::wrap(text.as_bytes(), b',');
        let mut reader = csv::ReaderBuilder::new().from_reader(input);
        reader.byte_headers().unwrap();
        if watch.header_open(reader.position()) {
            return (0, Some(1));
        }
        let mut record = csv::ByteRecord::new();
        let mut rows = 0;
        loop {
            watch.record_starts(reader.position());
            match reader.read_byte_record(&mut record) {
                Ok(false) => return (rows, watch.open_at_end()),
                Ok(true) => rows += 1,
                Err(_) => return (rows, watch.open_in_failed()),
            }
        }
    }

    #[test]
    fn the_watch_finds_a_runaway_quote_and_the_line_it_opened_on() {
        assert_eq!(read("id,text\n1,ok\n2,\"open\n3,lost\n4,lost\n"), (2, Some(3)));
        assert_eq!(read("id,text\r\n1,ok\r\n2,\"open\r\n3,lost\r\n"), (2, Some(3)));
        assert_eq!(read("id,text\n1,a\n\n\n2,\"open\n3,c\n"), (2, Some(5)), "after blank lines");
        assert_eq!(read("id,text\r\n1,a\r\n\r\n2,\"open\r\n3,c\r\n"), (2, Some(4)));
        assert_eq!(read("id,text\n1,\"x\ny\"\n2,\"open\n3,c"), (2, Some(4)), "after a long row");
        assert_eq!(read("a,b,c\n1,\"open,2\n3,4,5\n"), (0, Some(2)), "not in the last column");
        assert_eq!(read("id,text\n1,\"two\nlines\"\n2,b\n"), (2, None));
        assert_eq!(read("id,\"text\n1,a\n"), (0, Some(1)), "a header that never closes");
        assert_eq!(read("id,text\n1,\"a \"\"b\"\" c\"\n"), (1, None));
        assert_eq!(read("a,b,c\n1,2\n3,\"x\n"), (0, None), "a short row, and the quote is later");
    }

    #[test]
    fn a_record_starts_past_blank_lines_with_lf_and_crlf_endings() {
        for text in ["id,text\n1,a\n\n\n2,b,c\n", "id,text\r\n1,a\r\n\r\n\r\n2,b,c\r\n"] {
            let (input, mut watch) = Watch::wrap(text.as_bytes(), b',');
            let mut reader = csv::ReaderBuilder::new().from_reader(input);
            reader.byte_headers().unwrap();
            let mut record = csv::ByteRecord::new();
            let mut lines = Vec::new();
            loop {
                watch.record_starts(reader.position());
                lines.push(watch.record_line());
                if reader.read_byte_record(&mut record).is_err() {
                    break;
                }
            }
            assert_eq!(lines, [2, 5], "{text:?}");
        }
    }

    #[test]
    fn the_watch_keeps_a_few_records_not_the_file() {
        let text: String = (0..100_000).map(|i| format!("{i},\"text number {i}\"\n")).collect();
        let (input, mut watch) = Watch::wrap(text.as_bytes(), b',');
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(input);
        let mut record = csv::ByteRecord::new();
        let mut most = 0;
        loop {
            watch.record_starts(reader.position());
            most = most.max(watch.kept.borrow().bytes.len());
            if !reader.read_byte_record(&mut record).unwrap() {
                break;
            }
        }
        assert!(text.len() > 2_000_000 && most < 100_000, "kept {most} bytes");
        assert_eq!(watch.open_at_end(), None);
    }
}
