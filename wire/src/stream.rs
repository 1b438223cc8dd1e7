//! The receive side shared by every framed codec: a buffer that finds frames behind a start
//! code and resynchronises after garbage, impossible lengths or a failed check.

/// What a codec says of the bytes from a start code on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not all of the frame has arrived yet.
    Incomplete,
    /// Not a frame: a corrupt length, checksum or end code. Decoding resumes after the
    /// start code.
    Bad,
    /// A whole, valid frame of this many bytes.
    Frame(usize),
}

/// Received bytes not yet decoded.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    /// Stretches of garbage and broken frames skipped so far.
    pub corrupt: u64,
}

impl FrameBuffer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Drops a partial frame, e.g. after the line has been silent longer than a frame takes:
    /// a corrupt length byte would otherwise hold up the frames behind it.
    pub fn flush_partial(&mut self) {
        if !self.buf.is_empty() {
            self.corrupt += 1;
            self.buf.clear();
        }
    }

    /// The next whole frame beginning with `start` (with `check` judging the bytes from the
    /// start code on), or `None` until more bytes arrive.
    pub fn next(&mut self, start: &[u8], check: impl Fn(&[u8]) -> Check) -> Option<Vec<u8>> {
        loop {
            let at = if start.is_empty() {
                (!self.buf.is_empty()).then_some(0)
            } else {
                self.buf.windows(start.len()).position(|w| w == start)
            };
            let Some(at) = at else {
                // Keep what may be the beginning of a start code.
                let keep = start.len().saturating_sub(1).min(self.buf.len());
                if self.buf.len() > keep {
                    self.corrupt += 1;
                    self.buf.drain(..self.buf.len() - keep);
                }
                return None;
            };
            if at > 0 {
                self.corrupt += 1;
                self.buf.drain(..at);
            }
            match check(&self.buf) {
                Check::Incomplete => return None,
                Check::Bad => {
                    self.corrupt += 1;
                    self.buf.drain(..start.len().max(1));
                }
                Check::Frame(total) => return Some(self.buf.drain(..total).collect()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy codec: AA, a length, that many bytes.
    fn check(b: &[u8]) -> Check {
        match b.get(1) {
            None => Check::Incomplete,
            Some(0) => Check::Bad,
            Some(&n) if b.len() < 2 + n as usize => Check::Incomplete,
            Some(&n) => Check::Frame(2 + n as usize),
        }
    }

    #[test]
    fn frames_are_found_behind_garbage_and_broken_ones() {
        let mut f = FrameBuffer::default();
        f.push(&[1, 2, 0xAA, 0, 0xAA, 2, 7]);
        assert_eq!(f.next(&[0xAA], check), None, "incomplete");
        f.push(&[8, 9]);
        assert_eq!(f.next(&[0xAA], check), Some(vec![0xAA, 2, 7, 8]));
        assert_eq!(f.next(&[0xAA], check), None);
        // The garbage; the broken frame's start code; the rest of it up to the next start
        // code; the stray 9.
        assert_eq!(f.corrupt, 4);
    }
}
