//! A line-mode client's bytes cut into lines: `\r\n`, `\n` and telnet's
//! `\r\0` each end one (so does a lone `\r`), and a line is never longer
//! than the limit in force, which is the frame limit: the bytes of a line
//! not yet ended are all this holds, so a client that never ends its line
//! costs at most the limit.

use bytes::{Buf, BytesMut};

/// A line longer than the limit: the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLong;

/// The data bytes received (telnet commands already taken out) and not yet
/// taken as lines.
#[derive(Debug, Default)]
pub(crate) struct Input {
    data: BytesMut,
    /// The last line ended with `\r` and the byte after it has not arrived:
    /// if it is `\n` or `\0`, it belongs to that ending.
    after_cr: bool,
}

impl Input {
    /// Where received data bytes go.
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        &mut self.data
    }

    /// The next whole line, without its ending, or `None` until one is
    /// whole. At end of stream (`eof`), what is left is the last line.
    ///
    /// # Errors
    /// [`TooLong`] when the line holds more than `limit` bytes, as soon as
    /// that is known: the rest is not waited for.
    pub(crate) fn next_line(
        &mut self,
        limit: usize,
        eof: bool,
    ) -> Option<Result<BytesMut, TooLong>> {
        if self.after_cr && !self.data.is_empty() {
            self.after_cr = false;
            if matches!(self.data[0], b'\n' | b'\0') {
                self.data.advance(1);
            }
        }
        let Some(end) = self.data.iter().position(|&b| b == b'\n' || b == b'\r') else {
            if self.data.len() > limit {
                return Some(Err(TooLong));
            }
            if eof && !self.data.is_empty() {
                return Some(Ok(self.data.split()));
            }
            return None;
        };
        if end > limit {
            return Some(Err(TooLong));
        }
        let line = self.data.split_to(end);
        let ending = self.data.get_u8();
        if ending == b'\r' {
            match self.data.first() {
                Some(b'\n' | b'\0') => self.data.advance(1),
                Some(_) => {}
                None => self.after_cr = true,
            }
        }
        Some(Ok(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one at a time, taking every whole line after each.
    fn lines(chunks: &[&[u8]], limit: usize) -> Vec<Result<Vec<u8>, TooLong>> {
        let mut input = Input::default();
        let mut out = Vec::new();
        for chunk in chunks {
            input.buffer().extend_from_slice(chunk);
            while let Some(line) = input.next_line(limit, false) {
                let end = line.is_err();
                out.push(line.map(|l| l.to_vec()));
                if end {
                    return out;
                }
            }
        }
        while let Some(line) = input.next_line(limit, true) {
            out.push(line.map(|l| l.to_vec()));
        }
        out
    }

    fn ok(lines: &[&str]) -> Vec<Result<Vec<u8>, TooLong>> {
        lines.iter().map(|l| Ok(l.as_bytes().to_vec())).collect()
    }

    #[test]
    fn crlf_bare_lf_and_telnets_cr_nul_each_end_one_line() {
        assert_eq!(
            lines(&[b"a\r\nb\nc\r\0d\re\n"], 100),
            ok(&["a", "b", "c", "d", "e"])
        );
    }

    #[test]
    fn an_ending_split_between_reads_is_still_one_ending() {
        assert_eq!(
            lines(&[b"a\r", b"\nb\r", b"\0c\n"], 100),
            ok(&["a", "b", "c"])
        );
        assert_eq!(lines(&[b"a\r", b"", b"\n"], 100), ok(&["a"]));
    }

    #[test]
    fn empty_lines_are_lines() {
        assert_eq!(lines(&[b"\r\n\nx\n"], 100), ok(&["", "", "x"]));
    }

    #[test]
    fn the_rest_at_end_of_stream_is_the_last_line() {
        assert_eq!(lines(&[b"a\nlast"], 100), ok(&["a", "last"]));
    }

    #[test]
    fn a_line_at_the_limit_passes_and_one_byte_more_does_not() {
        assert_eq!(lines(&[b"12345\n"], 5), ok(&["12345"]));
        assert_eq!(lines(&[b"123456\n"], 5), vec![Err(TooLong)]);
    }

    #[test]
    fn a_line_that_never_ends_is_refused_once_past_the_limit() {
        // Nothing is waited for past the limit: no line end ever arrives.
        assert_eq!(lines(&[b"123", b"456"], 5), vec![Err(TooLong)]);
        assert_eq!(lines(&[b"12345"], 5), ok(&["12345"]));
    }
}
