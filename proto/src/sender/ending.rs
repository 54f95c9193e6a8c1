//! The end-of-session rule: when the session is decided, and how.
//!
//! With a wanted number of clients: success once that many verified and no client is still
//! receiving; failure once every client heard is final but fewer verified; and a deadline
//! (the session timeout after sending started, or by default a timeout after the forward
//! pass ended). Without one: once everything was sent, nothing is pending and no client was
//! heard for the linger time.
//!
//! A client declared lost may come back (a link down for a while, a machine rebooting into
//! the imaging initramfs): until the lost grace has passed since the latest client was
//! declared lost, lost clients do not decide a failure, and a quiet session waits for them.

use super::clients::ClientTally;
use super::config::SenderConfig;
use super::events::SessionEnd;

/// The facts the rule looks at.
pub(crate) struct EndFacts {
    pub tally: ClientTally,
    /// When the forward pass started.
    pub started_us: Option<u64>,
    /// When the forward pass ended.
    pub forward_done_us: Option<u64>,
    /// Nothing is left to send.
    pub idle: bool,
    /// The latest of: a client heard, something sent, the forward pass ended.
    pub last_activity_us: u64,
    /// With lost clients: until when they may still come back (the lost grace after the
    /// latest was declared lost).
    pub lost_may_return_until_us: Option<u64>,
}

impl EndFacts {
    fn lost_may_return(&self, now_us: u64) -> bool {
        self.lost_may_return_until_us.is_some_and(|t| now_us < t)
    }
}

/// The deadline for the wanted clients, once it is known.
pub(crate) fn deadline(cfg: &SenderConfig, f: &EndFacts) -> Option<u64> {
    if cfg.wanted_clients == 0 {
        return None;
    }
    match (cfg.session_timeout_us, f.started_us, f.forward_done_us) {
        (Some(t), Some(s), _) => Some(s.saturating_add(t)),
        (None, _, Some(e)) => Some(e.saturating_add(cfg.timeout_after_forward_us)),
        _ => None,
    }
}

/// When the session ends for quiet (no wanted count), if nothing happens before.
pub(crate) fn quiet_at(cfg: &SenderConfig, f: &EndFacts) -> Option<u64> {
    // A client still receiving but silent (its link down) is waited for until it is
    // declared lost, and then for the lost grace.
    if cfg.wanted_clients > 0 || f.forward_done_us.is_none() || !f.idle || f.tally.active() > 0 {
        return None;
    }
    let quiet = f.last_activity_us.saturating_add(cfg.linger_us);
    Some(quiet.max(f.lost_may_return_until_us.unwrap_or(0)))
}

/// Whether the session is decided at `now_us`, and how.
pub(crate) fn decide(cfg: &SenderConfig, f: &EndFacts, now_us: u64) -> Option<SessionEnd> {
    let t = f.tally;
    let wanted = cfg.wanted_clients;
    if wanted > 0 {
        if t.active() == 0 && t.verified >= wanted {
            return Some(SessionEnd::WantedVerified);
        }
        if t.active() == 0
            && t.failed + t.lost > 0
            && t.verified + t.failed + t.lost >= wanted
            && !f.lost_may_return(now_us)
        {
            return Some(SessionEnd::WantedUnreachable);
        }
        if deadline(cfg, f).is_some_and(|d| now_us >= d) {
            return Some(SessionEnd::Deadline);
        }
        return None;
    }
    quiet_at(cfg, f)
        .is_some_and(|q| now_us >= q)
        .then_some(SessionEnd::Quiet)
}
