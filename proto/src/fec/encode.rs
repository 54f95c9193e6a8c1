//! Encoding: source symbols are copies, repair symbols Cauchy combinations of the sources.

use super::{Engine, FecError, MULTI_MAX, balanced_group, block_bytes, coefficient};

impl Engine {
    /// Writes symbol `esi` of the block into `out[..symbol_size]`.
    ///
    /// `block[..k * symbol_size]` holds the `k` source symbols contiguously. For `esi < k` this
    /// is a copy of source symbol `esi`; otherwise the repair symbol `sum_j C(esi, j) * X_j`
    /// (cost: `k` multiply-adds of one symbol).
    pub fn encode_symbol(
        &self,
        block: &[u8],
        k: usize,
        symbol_size: usize,
        esi: u16,
        out: &mut [u8],
    ) -> Result<(), FecError> {
        self.encode_symbols(block, k, symbol_size, esi, 1, out)
    }

    /// Writes the `count` consecutive symbols `first_esi .. first_esi + count` of the block
    /// into `out[..count * symbol_size]` (symbol `first_esi + i` at offset `i * symbol_size`).
    ///
    /// Repair symbols are computed up to 8 at a time in one pass over the source symbols,
    /// which is faster than calling [`Engine::encode_symbol`] for each. `first_esi + count`
    /// must not exceed 65536.
    pub fn encode_symbols(
        &self,
        block: &[u8],
        k: usize,
        symbol_size: usize,
        first_esi: u16,
        count: usize,
        out: &mut [u8],
    ) -> Result<(), FecError> {
        let total = block_bytes(k, symbol_size)?;
        if first_esi as usize + count > 65_536 {
            return Err(FecError::BadEsi);
        }
        let out_bytes = count
            .checked_mul(symbol_size)
            .ok_or(FecError::BufferTooSmall)?;
        if block.len() < total || out.len() < out_bytes {
            return Err(FecError::BufferTooSmall);
        }
        let block = &block[..total];
        let out = &mut out[..out_bytes];
        let first = first_esi as usize;
        // Source symbols: verbatim copies.
        let n_src = k.saturating_sub(first).min(count);
        if n_src > 0 {
            out[..n_src * symbol_size]
                .copy_from_slice(&block[first * symbol_size..(first + n_src) * symbol_size]);
        }
        // Repair symbols, in groups sharing each pass over the sources.
        let repair = &mut out[n_src * symbol_size..];
        let mut esi = first + n_src;
        let per_group = balanced_group(count - n_src);
        for group in repair.chunks_mut(per_group * symbol_size) {
            let g = group.len() / symbol_size;
            group.fill(0);
            let mut coefs = [0u16; MULTI_MAX];
            for (j, x) in block.chunks_exact(symbol_size).enumerate() {
                for (o, c) in coefs[..g].iter_mut().enumerate() {
                    *c = coefficient((esi + o) as u16, j as u16);
                }
                self.mul_add_multi(group, x, &coefs[..g]);
            }
            esi += g;
        }
        Ok(())
    }
}
