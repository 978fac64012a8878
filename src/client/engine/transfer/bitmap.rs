//! Chunk bitmaps: bit `i` (of byte `i / 8`, least significant first) is
//! chunk `i`. The layout the wire (`HaveMap`) and the resume sidecar use.

/// Bit `index` (false past the end).
pub fn bit(bits: &[u8], index: usize) -> bool {
    bits.get(index / 8).is_some_and(|b| b & (1 << (index % 8)) != 0)
}

/// Sets bit `index` (ignored past the end).
pub fn set_bit(bits: &mut [u8], index: usize) {
    if let Some(b) = bits.get_mut(index / 8) {
        *b |= 1 << (index % 8);
    }
}

/// Clears bit `index` (ignored past the end).
pub fn clear_bit(bits: &mut [u8], index: usize) {
    if let Some(b) = bits.get_mut(index / 8) {
        *b &= !(1 << (index % 8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_set_clear_and_ignore_the_end() {
        let mut b = vec![0u8; 2];
        set_bit(&mut b, 0);
        set_bit(&mut b, 9);
        set_bit(&mut b, 16);
        assert_eq!(b, [0b1, 0b10]);
        assert!(bit(&b, 9) && !bit(&b, 8) && !bit(&b, 16));
        clear_bit(&mut b, 9);
        clear_bit(&mut b, 99);
        assert_eq!(b, [0b1, 0]);
    }
}
