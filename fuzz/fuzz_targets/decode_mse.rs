//! Fuzzes the receiver's side of the MSE/PE encryption handshake. The
//! input is either raw bytes from a "peer", or (first byte odd) the steps
//! of a real initiator whose padding, initial payload and methods come
//! from the input, with one byte flipped where the input says (or none).
//! Beyond "no panic": fed whole or in two pieces cut anywhere, the
//! receiver answers the same bytes and ends the same way; an untouched
//! handshake from a real initiator always succeeds with its payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::bt::mse::{Handshake, MseError, Progress, KEY_LEN, PLAINTEXT, RC4};

const SKEY: [u8; 20] = [7; 20];
/// Tiny private exponents: the Diffie-Hellman is not what is fuzzed, and
/// full 160-bit ones would cost most of each run.
const PRIV_A: [u8; 20] = {
    let mut k = [0; 20];
    k[19] = 3;
    k
};
const PRIV_B: [u8; 20] = {
    let mut k = [0; 20];
    k[19] = 5;
    k
};

type Outcome = (Vec<u8>, Result<Option<(u32, Vec<u8>, Vec<u8>)>, MseError>);

fn receive(parts: &[&[u8]], methods: u32) -> Outcome {
    let mut b = Handshake::receiver(vec![[1; 20], SKEY], &PRIV_B, &[2; 33], &[4; 5], methods);
    let mut out = Vec::new();
    for p in parts {
        match b.feed(p, &mut out) {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Done(d)) => return (out, Ok(Some((d.method, d.ia, d.rest)))),
            Err(e) => return (out, Err(e)),
        }
    }
    (out, Ok(None))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let methods = [RC4, PLAINTEXT, RC4 | PLAINTEXT][usize::from(mode >> 1) % 3];
    let (input, want_ia) = if mode & 1 == 0 {
        (rest.to_vec(), None)
    } else {
        let [pa, pc, ia_len, flip_hi, flip_lo, provide, ..] = *rest else {
            return;
        };
        let ia: Vec<u8> = rest.iter().skip(6).take(usize::from(ia_len)).copied().collect();
        let provide = u32::from(provide & 3);
        let mut out = Vec::new();
        let mut a = Handshake::initiator(
            SKEY,
            &PRIV_A,
            &vec![9; usize::from(pa) * 2],
            &vec![8; usize::from(pc)],
            provide,
            &ia,
            &mut out,
        );
        // The receiver's Yb is all the initiator needs for step 3.
        let mut b = Handshake::receiver(vec![SKEY], &PRIV_B, &[2; 33], &[], methods);
        let mut yb = Vec::new();
        let _ = b.feed(&out[..KEY_LEN], &mut yb);
        let _ = a.feed(&yb[..KEY_LEN], &mut out);
        let flip = usize::from(u16::from_be_bytes([flip_hi, flip_lo]));
        let untouched = flip >= out.len();
        if !untouched {
            out[flip] ^= 0x40;
        }
        let agree = provide & methods != 0;
        (out, (untouched && agree).then_some(ia))
    };
    let whole = receive(&[&input], methods);
    let cut = usize::from(mode) * input.len() / 256;
    let split = receive(&[&input[..cut], &input[cut..]], methods);
    assert_eq!(whole, split, "cut at {cut}");
    if let Some(ia) = want_ia {
        let (_, end) = &whole;
        let Ok(Some((method, got, _))) = end else {
            panic!("a real handshake failed: {end:?}")
        };
        assert_eq!(got, &ia);
        assert!(*method == RC4 || *method == PLAINTEXT);
    }
});
