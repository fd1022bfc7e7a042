//! The layout of a slab: several arrays' bytes in one allocation, each on an
//! alignment boundary. Host slabs (`storage`) and device slabs (`cuda`) share
//! it; it lives apart from both so that neither module depends on the other
//! for it.

use crate::error::{Error, Result};

/// Where each of `lens` starts when they are laid out back to back, each on
/// an `align` boundary, and the total size (a multiple of `align`).
pub(crate) fn layout(lens: &[usize], align: usize) -> Result<(Vec<usize>, usize)> {
    let mut offsets = Vec::with_capacity(lens.len());
    let mut total = 0usize;
    for &len in lens {
        offsets.push(total);
        total = total
            .checked_add(len)
            .and_then(|t| t.checked_next_multiple_of(align))
            .ok_or_else(|| Error::invalid("slab size overflows"))?;
    }
    Ok((offsets, total))
}

#[cfg(test)]
mod tests {
    use super::layout;

    #[test]
    fn offsets_are_aligned_and_total_rounds_up() {
        let (offsets, total) = layout(&[1, 64, 0, 65], 64).unwrap();
        assert_eq!(offsets, [0, 64, 128, 128]);
        assert_eq!(total, 256);
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(layout(&[usize::MAX - 3, 8], 64).is_err());
    }
}
