//! MAC candidates for the tag of keyed sessions (docs/PROTOCOL.md section 9), on the packet
//! sizes broadband sends: 1444 bytes (a 1408-byte symbol's data packet before the tag, as
//! in issue 9) and 1464 bytes (the tagged data packet a client checks). Every candidate
//! gives a tag of at least 128 bits and is computed per packet, as the wire needs it.
//! Nonce-based candidates (GMAC, ChaCha20-Poly1305) are measured with a fixed nonce: the
//! figure is their speed, not a safe use (see the module doc of bb_proto::wire::auth).

use std::hint::black_box;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use bb_proto::wire::auth::{Direction, MacKey, PresharedKey};
use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use cmac::{Cmac, Mac as _};
use hmac::Hmac;
use poly1305::Poly1305;
use poly1305::universal_hash::UniversalHash;
use sha2::Sha256;

use crate::{fill, throughput};

const KEY: [u8; 32] = [0x42; 32];

fn line(name: &str, len: usize, mbs: f64) {
    println!("mac {name} {len} B: {mbs:.1} MB/s");
}

/// Prints MB/s per core of every candidate on 1444- and 1464-byte packets.
pub fn bench_mac() {
    println!("# single core, MB/s = 10^6 bytes/s of packet authenticated, one tag per packet");
    for len in [1444usize, 1464] {
        let mut pkt = vec![0u8; len];
        fill(&mut pkt, 7);
        let per = 256;
        let total = len * per;

        let key = MacKey::derive(&PresharedKey::from_bytes(KEY), 1, Direction::FromServer);
        let mbs = throughput(total, || {
            for _ in 0..per {
                black_box(key.tag(black_box(&pkt)));
            }
        });
        line("HMAC-SHA256-128 (bb_proto::wire::auth, chosen)", len, mbs);

        let mbs = throughput(total, || {
            for _ in 0..per {
                black_box(blake3::keyed_hash(&KEY, black_box(&pkt)));
            }
        });
        line("keyed BLAKE3", len, mbs);

        let mbs = throughput(total, || {
            for _ in 0..per {
                let mut m = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&KEY).unwrap();
                hmac::Mac::update(&mut m, black_box(&pkt));
                black_box(hmac::Mac::finalize(m).into_bytes());
            }
        });
        line("HMAC-SHA256", len, mbs);

        // The key's inner and outer pads hashed once per session, not once per packet.
        let keyed = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&KEY).unwrap();
        let mbs = throughput(total, || {
            for _ in 0..per {
                let mut m = keyed.clone();
                hmac::Mac::update(&mut m, black_box(&pkt));
                black_box(hmac::Mac::finalize(m).into_bytes());
            }
        });
        line("HMAC-SHA256 (pads precomputed)", len, mbs);

        let mbs = throughput(total, || {
            for _ in 0..per {
                let mut m =
                    <Cmac<aes::Aes128> as cmac::KeyInit>::new_from_slice(&KEY[..16]).unwrap();
                m.update(black_box(&pkt));
                black_box(m.finalize().into_bytes());
            }
        });
        line("AES-128-CMAC", len, mbs);

        // ChaCha20-Poly1305 with the packet as associated data: a ChaCha20 block keys
        // Poly1305 for each packet (RFC 8439 section 2.6).
        let mbs = throughput(total, || {
            for i in 0..per {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let mut c = ChaCha20::new(&KEY.into(), &nonce.into());
                let mut otk = [0u8; 32];
                c.apply_keystream(&mut otk);
                let mut p = <Poly1305 as poly1305::universal_hash::KeyInit>::new(&otk.into());
                p.update_padded(black_box(&pkt));
                black_box(p.finalize());
            }
        });
        line("Poly1305 keyed by ChaCha20 per packet", len, mbs);

        let gcm128 = Aes128Gcm::new_from_slice(&KEY[..16]).unwrap();
        let gcm256 = Aes256Gcm::new_from_slice(&KEY).unwrap();
        let mbs = throughput(total, || {
            for i in 0..per {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let tag = gcm128
                    .encrypt_inout_detached(&nonce.into(), black_box(&pkt), (&mut [][..]).into())
                    .unwrap();
                black_box(tag);
            }
        });
        line("GMAC (AES-128-GCM, empty plaintext)", len, mbs);
        let mbs = throughput(total, || {
            for i in 0..per {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let tag = gcm256
                    .encrypt_inout_detached(&nonce.into(), black_box(&pkt), (&mut [][..]).into())
                    .unwrap();
                black_box(tag);
            }
        });
        line("GMAC (AES-256-GCM, empty plaintext)", len, mbs);
    }
}
