//! All of the receiver's large memory, fixed at build time (BSS: pages never touched cost no
//! RSS; the slot pool is faulted in at start, the rest a session needs once it is known).
//! Handed out exactly once, by [`take`].

use bb_proto::fec;
use bb_zstd::DctxWorkspace;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Symbol memory of the block slots. At the default geometry (1408 B x 512 symbols =
/// 720,896 B per block) this is 17 slots.
pub const POOL_BYTES: usize = 12 << 20;
/// Most block slots.
pub const MAX_SLOTS: usize = 64;
/// Symbol-index entries: k per slot, for every slot even at the largest k.
pub const ESI_ENTRIES: usize = MAX_SLOTS * fec::MAX_K;
/// One bit per block: 393,216 words = 25.1 M blocks = 16.5 TiB at the default geometry.
pub const DONE_WORDS: usize = 3 << 17;
/// The largest block (k x S bytes) the decoder supports: half the pool, so that an in-order
/// (stdout) sink always has two slots.
pub const MAX_BLOCK_BYTES: usize = POOL_BYTES / 2;
/// Decoder work space for the largest block.
pub const SCRATCH_BYTES: usize =
    fec::decode_scratch_bytes(fec::MAX_K, MAX_BLOCK_BYTES / fec::MAX_K);
/// recvmmsg batch: reads per call, and bytes per read: a UDP GRO read of datagrams the
/// kernel coalesced holds up to 64 KiB (one datagram, jumbo frames included, fits too).
/// 2 MiB, faulted in at start with the pool.
pub const RX_BATCH: usize = 32;
pub const RX_LEN: usize = 1 << 16;

pub struct Mem {
    pub done: [u64; DONE_WORDS],
    pub pool: [u8; POOL_BYTES],
    pub esi_at: [u16; ESI_ENTRIES],
    pub scratch: [u8; SCRATCH_BYTES],
    /// One bit per block: blocks the server's zero map names.
    pub zero: [u64; DONE_WORDS],
    /// One block of decompressed output.
    pub out: [u8; MAX_BLOCK_BYTES],
    pub rx: [[u8; RX_LEN]; RX_BATCH],
    pub tx: [u8; 1536],
    /// zstd's decompression context (bb_zstd::DCTX_WORKSPACE_BYTES).
    pub dctx: DctxWorkspace,
}

struct MemCell(UnsafeCell<Mem>);

// SAFETY: the only access is through `take`, which hands out the &mut at most once.
unsafe impl Sync for MemCell {}

static MEM: MemCell = MemCell(UnsafeCell::new(Mem {
    done: [0; DONE_WORDS],
    pool: [0; POOL_BYTES],
    esi_at: [0; ESI_ENTRIES],
    scratch: [0; SCRATCH_BYTES],
    zero: [0; DONE_WORDS],
    out: [0; MAX_BLOCK_BYTES],
    rx: [[0; RX_LEN]; RX_BATCH],
    tx: [0; 1536],
    dctx: DctxWorkspace::new(),
}));
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The memory, the first time only (None afterwards).
pub fn take() -> Option<&'static mut Mem> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: TAKEN guarantees this line runs at most once, so this is the only reference to
    // MEM ever created.
    Some(unsafe { &mut *MEM.0.get() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb_proto::receiver::Receiver;
    use bb_proto::wire::Geometry;

    #[test]
    fn default_geometry_fits() {
        let g = Geometry::new(1 << 40, 1408, 512).unwrap();
        let (slot, esis, scratch) = Receiver::slot_needs(&g);
        assert_eq!(POOL_BYTES / slot, 17);
        assert!(ESI_ENTRIES / esis >= 17);
        assert!(scratch <= SCRATCH_BYTES);
        // 16 TiB at the default geometry.
        let g = Geometry::new(16 << 40, 1408, 512).unwrap();
        assert!(g.block_count() as usize <= DONE_WORDS * 64);
        // The largest block allowed still has two slots and fits the scratch.
        let g = Geometry::new(1 << 30, 1536, 4096).unwrap();
        let (slot, _, scratch) = Receiver::slot_needs(&g);
        assert_eq!(POOL_BYTES / slot, 2);
        assert!(scratch <= SCRATCH_BYTES);
        assert!(take().is_some());
        assert!(take().is_none());
    }
}
