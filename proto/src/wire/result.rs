//! Result packet (a client's final outcome) and its acknowledgement.

use super::field::{
    get_bytes32, get_u8, get_u16, get_u64, put_bytes, put_u8, put_u16, put_u64, result as f,
    result_ack,
};
use super::{
    CRC_LEN, Packet, PacketType, RESULT_ACK_LEN, RESULT_LEN, WireError, room, seal, write_header,
};

/// Why a client failed (the result packet's reason byte; 0 there means "verified").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FailReason {
    /// The digest of what was written differs from the announced image digest.
    DigestMismatch = 1,
    /// Writing or flushing the target failed.
    IoError = 2,
    /// The target is smaller than the image.
    TargetTooSmall = 3,
    /// The image is larger than this client supports.
    ImageTooLarge = 4,
    /// The server stopped before the image was complete.
    ServerGone = 5,
    /// The client gave up waiting (timeout).
    Timeout = 6,
    /// The client was interrupted (signal).
    Interrupted = 7,
    /// Two different image digests were announced for the client's session: two servers
    /// share a session id, or an announce was forged. The client stopped; its disk is not
    /// in question.
    DigestConflict = 8,
    /// No usable target: with `bb.dev=auto` none or several disks fit the image, or the one
    /// chosen could not be opened.
    NoTarget = 9,
}

impl FailReason {
    /// Decodes the wire byte; `None` for 0 (no failure) and unknown codes.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::DigestMismatch,
            2 => Self::IoError,
            3 => Self::TargetTooSmall,
            4 => Self::ImageTooLarge,
            5 => Self::ServerGone,
            6 => Self::Timeout,
            7 => Self::Interrupted,
            8 => Self::DigestConflict,
            9 => Self::NoTarget,
            _ => return None,
        })
    }
    /// Short human text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::DigestMismatch => "digest mismatch",
            Self::IoError => "I/O error on target",
            Self::TargetTooSmall => "target too small",
            Self::ImageTooLarge => "image too large for client",
            Self::ServerGone => "server ended the session",
            Self::Timeout => "timed out",
            Self::Interrupted => "interrupted",
            Self::DigestConflict => "two image digests announced for one session",
            Self::NoTarget => "no usable target disk (none or several fit)",
        }
    }
}

/// How a client ended, as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultOutcome {
    /// The whole image was written, flushed and matched the announced digest.
    Verified,
    /// It did not, for this reason.
    Failed(FailReason),
}

/// A client's final outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultReport {
    /// Random id the client chose at start.
    pub client_id: u64,
    /// Verified, or failed and why.
    pub outcome: ResultOutcome,
    /// Bytes written to the target.
    pub bytes_written: u64,
    /// Digest the client computed over what it wrote (zero if it did not finish).
    pub digest: [u8; 32],
}

/// Builds a result packet; returns its length.
pub fn write_result(buf: &mut [u8], session: u64, r: &ResultReport) -> Result<usize, WireError> {
    room(buf, RESULT_LEN)?;
    let (verified, reason) = match r.outcome {
        ResultOutcome::Verified => (1, 0),
        ResultOutcome::Failed(reason) => (0, reason as u8),
    };
    write_header(buf, PacketType::Result, session);
    put_u64(buf, f::CLIENT_ID, r.client_id);
    put_u8(buf, f::VERIFIED, verified);
    put_u8(buf, f::REASON, reason);
    put_u16(buf, f::RESERVED, 0);
    put_u64(buf, f::BYTES_WRITTEN, r.bytes_written);
    put_bytes(buf, f::DIGEST, &r.digest);
    Ok(seal(buf, RESULT_LEN - CRC_LEN))
}

/// Builds a result acknowledgement for `client_id`; returns its length.
pub fn write_result_ack(buf: &mut [u8], session: u64, client_id: u64) -> Result<usize, WireError> {
    room(buf, RESULT_ACK_LEN)?;
    write_header(buf, PacketType::ResultAck, session);
    put_u64(buf, result_ack::CLIENT_ID, client_id);
    Ok(seal(buf, RESULT_ACK_LEN - CRC_LEN))
}

impl Packet<'_> {
    /// Reads a result packet: verified with reason 0, or failed with a known reason.
    pub fn result(&self) -> Result<ResultReport, WireError> {
        self.expect(PacketType::Result)?;
        let b = self.bytes;
        if b.len() != RESULT_LEN {
            return Err(WireError::BadLength);
        }
        let outcome = match (get_u8(b, f::VERIFIED), get_u8(b, f::REASON)) {
            (1, 0) => ResultOutcome::Verified,
            (1, _) => return Err(WireError::BadField("reason")),
            (0, code) => ResultOutcome::Failed(
                FailReason::from_u8(code).ok_or(WireError::BadField("reason"))?,
            ),
            _ => return Err(WireError::BadField("verified")),
        };
        if get_u16(b, f::RESERVED) != 0 {
            return Err(WireError::BadField("reserved"));
        }
        Ok(ResultReport {
            client_id: get_u64(b, f::CLIENT_ID),
            outcome,
            bytes_written: get_u64(b, f::BYTES_WRITTEN),
            digest: get_bytes32(b, f::DIGEST),
        })
    }

    /// Reads a result acknowledgement; returns the client id.
    pub fn result_ack(&self) -> Result<u64, WireError> {
        self.expect(PacketType::ResultAck)?;
        if self.bytes.len() != RESULT_ACK_LEN {
            return Err(WireError::BadLength);
        }
        Ok(get_u64(self.bytes, result_ack::CLIENT_ID))
    }
}
