//! A fixed-size first-in first-out ring, the receive FIFO of both UART
//! models (16 entries each: bytes in the 16550, 12-bit entries with error
//! bits in the PL011). The models decide how much of it they use (one
//! entry while their FIFOs are off) through [`Ring::len`] before pushing.

/// `N` entries of `T`, oldest first.
#[derive(Clone, Debug)]
pub struct Ring<T, const N: usize> {
    buf: [T; N],
    head: usize,
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Copy, const N: usize> Ring<T, N> {
    /// An empty ring; `filler` only initializes the unused slots.
    pub const fn new(filler: T) -> Self {
        Self {
            buf: [filler; N],
            head: 0,
            len: 0,
        }
    }

    /// How many entries it holds.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `entry`; the caller checks there is room (`len() < N`).
    pub fn push(&mut self, entry: T) {
        debug_assert!(self.len < N, "push into a full ring");
        self.buf[(self.head + self.len) % N] = entry;
        self.len += 1;
    }

    /// Takes the oldest entry.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let entry = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(entry)
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_in_order_across_the_wrap() {
        let mut r: Ring<u8, 4> = Ring::new(0);
        assert!(r.is_empty());
        for round in 0..3u8 {
            for i in 0..3 {
                r.push(round * 10 + i);
            }
            assert_eq!(r.len(), 3);
            for i in 0..3 {
                assert_eq!(r.pop(), Some(round * 10 + i));
            }
        }
        assert_eq!(r.pop(), None);
        r.push(7);
        r.clear();
        assert_eq!((r.len(), r.pop()), (0, None));
    }
}
