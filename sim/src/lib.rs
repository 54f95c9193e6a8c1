//! The broadband simulator: one sender and N receivers (the real bb-proto state machines)
//! over a simulated broadcast medium with loss, bursts, duplication, reordering, delay and a
//! finite link rate; late joiners and receivers that die. Deterministic for a seed.

pub mod args;
pub mod channel;
pub mod image;
pub mod load;
pub mod world;
