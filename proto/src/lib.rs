//! broadband protocol core. `no_std`, no heap: the static client uses all of it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod deficit;
pub mod digest;
pub mod fec;
pub mod gf16;
pub mod receiver;
pub mod sender;
pub mod wire;

#[cfg(target_arch = "x86_64")]
mod cpu;
