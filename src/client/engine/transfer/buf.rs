//! A fixed-capacity byte buffer for one direction of one connection.
//!
//! Bytes are appended at the end and consumed from the front. The capacity
//! is set once and never grows, which is what bounds a connection's memory
//! whatever its peer sends or asks for. When everything is consumed the
//! buffer rewinds to its start for free; [`Buf::compact`] moves a partial
//! message to the front when only a little is left.

use std::io::{self, Read, Write};

#[derive(Debug)]
pub struct Buf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buf {
    pub fn new(capacity: usize) -> Buf {
        Buf {
            data: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes waiting to be consumed.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Room left at the end, after compacting.
    pub fn room(&self) -> usize {
        self.data.len() - self.len()
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the unconsumed bytes to the front, so the room is all at the end.
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// The free space at the end, to be filled and then [`commit`](Buf::commit)ted.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.data[self.end..]
    }

    /// Marks `n` bytes of [`spare`](Buf::spare) as filled.
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    /// Appends `bytes`; false (and nothing appended) if they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.data.len() - self.end {
            self.compact();
        }
        if bytes.len() > self.data.len() - self.end {
            return false;
        }
        self.data[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }

    /// One `read` into the free space (compacting first if the space at the
    /// end is gone). `Ok(0)` means end of stream, unless the buffer is full.
    pub fn read_from<R: Read + ?Sized>(&mut self, r: &mut R) -> io::Result<usize> {
        if self.end == self.data.len() {
            self.compact();
        }
        let n = r.read(&mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// One `write` of the filled bytes.
    pub fn write_to<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<usize> {
        let n = w.write(&self.data[self.start..self.end])?;
        self.consume(n);
        Ok(n)
    }

    /// One [`read_from`](Buf::read_from), retrying `Interrupted`: `None`
    /// when the reader would block, `Some(0)` at the end of the stream.
    pub fn fill_from<R: Read + ?Sized>(&mut self, r: &mut R) -> io::Result<Option<usize>> {
        loop {
            match self.read_from(r) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the filled bytes until none are left or the writer would
    /// block (the next writable event resumes); other errors end it.
    pub fn flush_to<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<()> {
        while !self.is_empty() {
            match self.write_to(w) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_consumes_and_compacts_within_its_capacity() {
        let mut b = Buf::new(8);
        assert!(b.push(b"abcdef"));
        assert!(!b.push(b"xyz"), "would exceed the capacity");
        b.consume(4);
        assert_eq!(b.filled(), b"ef");
        assert!(b.push(b"xyz"), "compacts to make room");
        assert_eq!(b.filled(), b"efxyz");
        assert_eq!(b.room(), 3);
        let mut src: &[u8] = b"123456";
        assert_eq!(b.read_from(&mut src).unwrap(), 3);
        assert_eq!(b.filled(), b"efxyz123");
        let mut out = Vec::new();
        assert_eq!(b.write_to(&mut out).unwrap(), 8);
        assert!(b.is_empty());
        assert_eq!(b.room(), 8);
        b.spare()[..2].copy_from_slice(b"hi");
        b.commit(2);
        assert_eq!(b.filled(), b"hi");
    }
}
