//! How the sender behaves, the memory it works in, and why it can fail.

use super::clients::ClientInfo;
use crate::deficit::DeficitTree;
use crate::fec;
use crate::wire::{Geometry, WireError};

/// With a wanted number of clients and no session timeout: give up this long after the
/// forward pass ended.
pub const DEFAULT_TIMEOUT_AFTER_FORWARD_US: u64 = 600_000_000;

/// How the sender behaves. Times are in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct SenderConfig {
    /// Random session id (the shell draws it).
    pub session_id: u64,
    /// Image size and block geometry.
    pub geometry: Geometry,
    /// Complete once this many clients have verified (0: never by count; the session ends
    /// after `linger_us` of quiet instead).
    pub wanted_clients: u32,
    /// Start the forward pass once this many clients are present (0: at once).
    pub min_clients: u32,
    /// Start the forward pass at this time even with fewer clients (None: only by count).
    pub start_deadline_us: Option<u64>,
    /// With `wanted_clients`: give up this long after the forward pass started (None: use
    /// `timeout_after_forward_us`).
    pub session_timeout_us: Option<u64>,
    /// With `wanted_clients` and no `session_timeout_us`: give up this long after the
    /// forward pass ended.
    pub timeout_after_forward_us: u64,
    /// Without `wanted_clients`: end once everything was sent, nothing is pending and no
    /// client was heard for this long.
    pub linger_us: u64,
    /// Once the session is decided, keep announcing its end (and acknowledging late results)
    /// for this long before it is over.
    pub closing_us: u64,
    /// Sending rate in bits per second: the ceiling when adapting, the rate when not.
    pub rate_bps: u64,
    /// Where an adapting rate starts: the sending interface's link speed when known; None
    /// probes upward from [`PROBE_START_BPS`](super::PROBE_START_BPS).
    pub start_rate_bps: Option<u64>,
    /// Never above the TCP throughput equation for the worst receiver's loss and round trip
    /// (shares a congested link with TCP, as TFMCC).
    pub fair: bool,
    /// Floor for the adapted rate (it never goes below a sixteenth of `rate_bps` either).
    pub min_rate_bps: u64,
    /// Find the rate: the largest that the bulk of the clients take without congestion loss.
    pub adapt_rate: bool,
    /// Send repair symbols with each block, sized from the reported loss.
    pub proactive_repair: bool,
    /// Token bucket depth in bytes (how far sending may run ahead of the rate).
    pub burst_bytes: u64,
    /// Time between announces once started.
    pub announce_interval_us: u64,
    /// Also announce after this many data packets, so a client that joins during a fast
    /// transfer binds within about a block instead of losing a whole interval of data.
    pub announce_every_packets: u32,
    /// A client not heard from for this long is declared lost.
    pub client_timeout_us: u64,
    /// A client declared lost may come back (a link down, a machine rebooting into the
    /// imaging initramfs) for this long: the session is not decided as failed because of
    /// lost clients until this long after the latest was declared lost.
    pub lost_grace_us: u64,
    /// How long a send may still be on its way to a client (in its socket buffer or
    /// queue): a report that predates it is not trusted for its block within this time.
    pub in_flight_us: u64,
    /// Shortest status interval the sender asks clients for, in milliseconds.
    pub report_interval_ms: u32,
    /// Status reports per second the sender is willing to handle from all clients together.
    pub report_budget_per_s: u32,
    /// Erasure-code kernel that builds the symbols (only speed depends on it).
    pub engine: fec::Engine,
    /// With a key, every packet out is tagged and every packet in must carry a valid tag
    /// (docs/PROTOCOL.md section 9); without, tagged packets are dropped.
    pub key: Option<crate::wire::auth::PresharedKey>,
}

impl SenderConfig {
    /// Defaults for a LAN: adaptive rate probing upward (no ceiling below 100 Gbit/s),
    /// proactive repair, no start gate.
    pub fn new(session_id: u64, geometry: Geometry) -> Self {
        Self {
            session_id,
            geometry,
            wanted_clients: 0,
            min_clients: 0,
            start_deadline_us: None,
            session_timeout_us: None,
            timeout_after_forward_us: DEFAULT_TIMEOUT_AFTER_FORWARD_US,
            linger_us: 5_000_000,
            closing_us: 350_000,
            rate_bps: 100_000_000_000,
            start_rate_bps: None,
            fair: false,
            min_rate_bps: 1_000_000,
            adapt_rate: true,
            proactive_repair: true,
            burst_bytes: 64 * 1024,
            announce_interval_us: 100_000,
            announce_every_packets: 512,
            client_timeout_us: 10_000_000,
            lost_grace_us: 60_000_000,
            in_flight_us: 300_000,
            report_interval_ms: 100,
            report_budget_per_s: 2000,
            engine: fec::Engine::detect(),
            key: None,
        }
    }
}

/// Memory the sender works in, provided by the caller (sizes from [`SenderStorage::words`]).
pub struct SenderStorage<'a, A> {
    /// `DeficitTree::storage_len(blocks)` words: pending repair counts.
    pub repair_tree: &'a mut [u16],
    /// `DeficitTree::storage_len(blocks)` words: blocks to resend whole.
    pub resend_tree: &'a mut [u16],
    /// One per block: the next fresh repair symbol index.
    pub next_repair_esi: &'a mut [u16],
    /// One per block: the block check, filled as blocks are given.
    pub block_checks: &'a mut [u32],
    /// One per block: how the block is coded and its coded length, filled as blocks are
    /// given.
    pub coded_len: &'a mut [u32],
    /// The client table; its length is the most clients tracked.
    pub clients: &'a mut [Option<ClientInfo<A>>],
}

impl<A> SenderStorage<'_, A> {
    /// (tree words, per-block entries) needed for `geometry`.
    pub fn words(geometry: &Geometry) -> (usize, usize) {
        let n = geometry.block_count();
        (DeficitTree::storage_len(n), n as usize)
    }
}

/// Why the sender could not be built, or could not build a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderError {
    /// A storage slice is shorter than the geometry needs.
    StorageTooSmall,
    /// The image is empty.
    EmptyImage,
    /// The shell asked to build a symbol of a block not given yet, or with a buffer that is
    /// not the block's coded bytes padded to whole symbols.
    BadBlock,
    /// Blocks must be given in order, each once.
    BlockOutOfOrder,
    /// A zstd block's coded length is zero or not shorter than the block.
    BadCodedLength,
    /// Encoding failed.
    Fec(fec::FecError),
    /// Building the packet failed.
    Wire(WireError),
    /// The digest of the blocks given differs from the one announced ahead of them
    /// ([`super::Sender::expect_digest`]): the image changed while it was served.
    DigestChanged,
}

impl core::fmt::Display for SenderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::StorageTooSmall => f.write_str("sender storage too small for the image"),
            Self::EmptyImage => f.write_str("the image is empty"),
            Self::BadBlock => f.write_str("block buffer does not match the scheduled symbol"),
            Self::BlockOutOfOrder => f.write_str("blocks must be given in order, each once"),
            Self::BadCodedLength => {
                f.write_str("a compressed block must be shorter than the block itself")
            }
            Self::Fec(e) => write!(f, "erasure code: {e}"),
            Self::Wire(e) => write!(f, "packet: {e}"),
            Self::DigestChanged => f.write_str(
                "the blocks read differ from the image digest announced at the start: the image changed while it was served",
            ),
        }
    }
}
