//! Reading the big-endian fields of the membership channel's own
//! messages (heartbeats, claims), borrowing from the datagram.

/// The input ended before the field did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// A cursor over a payload.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if self.0.len() < n {
            return Err(Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        let mut b = [0; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(b))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    /// What is left to read.
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_big_endian_and_a_short_input_is_truncated() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 9]);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(2));
        assert_eq!(r.u32(), Ok(3));
        assert_eq!(r.u64(), Ok(4));
        assert!(!r.is_empty());
        assert_eq!(r.u16(), Err(Truncated));
        assert_eq!(r.take(1), Ok(&[9][..]), "a failed read takes nothing");
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(Truncated));
    }
}
