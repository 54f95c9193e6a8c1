//! MAC candidates for the tag of keyed sessions (docs/PROTOCOL.md section 9), on the packet
//! sizes broadband sends: 1444 bytes (a 1408-byte symbol's data packet, as in issue 9) and
//! 1456 bytes (the default data packet and its 8-byte counter: what is tagged today).
//! Every candidate gives a tag of at least 128 bits and is computed per packet, as the wire
//! needs it. Nonce-based candidates (GMAC, Poly1305, AES-GCM) take the packet's index as
//! the nonce, as the wire's counter does (see the module doc of bb_proto::wire::auth).

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
    for len in [1444usize, 1456] {
        let mut pkt = vec![0u8; len];
        fill(&mut pkt, 7);
        let per = 256;
        let total = len * per;

        let key = MacKey::derive(&PresharedKey::from_bytes(KEY), 1, Direction::FromServer, 0);
        let mbs = throughput(total, || {
            for i in 0..per {
                black_box(key.tag(i as u64, black_box(&pkt)));
            }
        });
        line(
            "AES-128-GCM tag of the packet (bb_proto::wire::auth, chosen)",
            len,
            mbs,
        );

        let mbs = throughput(total, || {
            for _ in 0..per {
                black_box(blake3::keyed_hash(&KEY, black_box(&pkt)));
            }
        });
        line("keyed BLAKE3", len, mbs);

        // The key's inner and outer pads hashed once per session, not once per packet (the
        // tag of the first keyed version, cut to 128 bits).
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

        // ring: hand-written AES-NI/VAES + PCLMUL (GMAC) and AVX2 Poly1305 assembly; the
        // packet is the associated data, the plaintext empty, so the tag is a MAC.
        for (name, alg) in [
            (
                "GMAC (ring AES-128-GCM, empty plaintext)",
                &ring::aead::AES_128_GCM,
            ),
            (
                "GMAC (ring AES-256-GCM, empty plaintext)",
                &ring::aead::AES_256_GCM,
            ),
            (
                "Poly1305 (ring ChaCha20-Poly1305, empty plaintext)",
                &ring::aead::CHACHA20_POLY1305,
            ),
        ] {
            let key = ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(alg, &KEY[..alg.key_len()]).unwrap(),
            );
            let mbs = throughput(total, || {
                for i in 0..per {
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&(i as u64).to_le_bytes());
                    let tag = key
                        .seal_in_place_separate_tag(
                            ring::aead::Nonce::assume_unique_for_key(nonce),
                            ring::aead::Aad::from(black_box(&pkt[..])),
                            &mut [],
                        )
                        .unwrap();
                    let _ = black_box(tag);
                }
            });
            line(name, len, mbs);
        }

        // AES-GCM over a scratch copy of the packet: the ciphertext is dropped, the tag
        // kept. ring encrypts with its VAES/VPCLMULQDQ (AVX2) or AES-NI+PCLMUL assembly,
        // which it uses for the plaintext but not for associated data.
        for (name, alg) in [
            (
                "AES-128-GCM tag of the packet as plaintext (ring)",
                &ring::aead::AES_128_GCM,
            ),
            (
                "AES-256-GCM tag of the packet as plaintext (ring)",
                &ring::aead::AES_256_GCM,
            ),
        ] {
            let key = ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(alg, &KEY[..alg.key_len()]).unwrap(),
            );
            let mut scratch = vec![0u8; len];
            let mbs = throughput(total, || {
                for i in 0..per {
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&(i as u64).to_le_bytes());
                    scratch.copy_from_slice(black_box(&pkt));
                    let tag = key
                        .seal_in_place_separate_tag(
                            ring::aead::Nonce::assume_unique_for_key(nonce),
                            ring::aead::Aad::empty(),
                            &mut scratch,
                        )
                        .unwrap();
                    let _ = black_box(tag);
                }
            });
            line(name, len, mbs);
        }

        let ring_hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &KEY);
        let mbs = throughput(total, || {
            for _ in 0..per {
                black_box(ring::hmac::sign(&ring_hmac, black_box(&pkt)));
            }
        });
        line("HMAC-SHA256 (ring)", len, mbs);
    }
}
