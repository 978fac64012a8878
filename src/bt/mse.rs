//! Message stream encryption (MSE/PE, the "Vuze" spec every BitTorrent
//! client follows): the handshake as a pure state machine for both roles,
//! and the RC4 stream cipher it sets up. No I/O, no clock, no randomness:
//! the caller gives the private key and the padding bytes (from
//! `crate::rand`), feeds what it reads and sends what comes out.
//!
//! The exchange (A initiates, B receives; S is the Diffie-Hellman secret,
//! SKEY the 20-byte info hash both handshakes use, HASH is SHA-1):
//! 1. A -> B: Ya, PadA              2. B -> A: Yb, PadB
//! 3. A -> B: HASH("req1", S), HASH("req2", SKEY) xor HASH("req3", S),
//!    ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4. B -> A: ENCRYPT(VC, crypto_select, len(PadD), PadD), then the stream
//!
//! 768-bit Diffie-Hellman over the spec's prime with generator 2 (keys of
//! 96 bytes), RC4 keyed with HASH("keyA"/"keyB", S, SKEY) with its first
//! 1024 bytes of keystream discarded; VC is 8 zero bytes.
//!
//! Bounds, as the spec sets them: pads of at most [`MAX_PAD`] bytes, so the
//! receiver looks for HASH("req1", S) in at most 512 + 20 bytes after Ya and
//! the initiator for the encrypted VC in at most 512 + 8 bytes after Yb;
//! the initial payload (IA) of at most [`MAX_IA`] bytes. The handshake
//! never holds more than about 1.2 KiB; anything else is an error, never a
//! longer wait.

use num_bigint::BigUint;
use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};
use std::fmt;

/// The spec's 768-bit prime (the Oakley group 1 prime).
const PRIME: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";
/// Bytes of a public key.
pub const KEY_LEN: usize = 96;
/// Longest padding of any step.
pub const MAX_PAD: usize = 512;
/// Longest initial payload accepted (a BitTorrent handshake is 68 bytes).
pub const MAX_IA: usize = 1024;
/// `crypto_provide` / `crypto_select` bits.
pub const PLAINTEXT: u32 = 1;
pub const RC4: u32 = 2;

const VC: [u8; 8] = [0; 8];
const DISCARD: usize = 1024;

/// Why a handshake failed. The peer's bytes are never repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MseError {
    /// No sync marker where the spec allows it (a plain peer, or garbage).
    NoSync,
    /// The peer asked for a torrent we do not have.
    UnknownTorrent,
    BadVc,
    BadPadLength,
    BadIaLength,
    /// No method both sides accept (e.g. encryption required, peer plain).
    NoCommonMethod,
    /// A handshake that already failed or finished was fed again.
    Finished,
}

impl fmt::Display for MseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MseError::NoSync => "encryption handshake: no sync marker where one must be",
            MseError::UnknownTorrent => "encryption handshake: the peer asked for a torrent we do not have",
            MseError::BadVc => "encryption handshake: wrong verification constant",
            MseError::BadPadLength => "encryption handshake: padding longer than 512 bytes",
            MseError::BadIaLength => "encryption handshake: initial payload too long",
            MseError::NoCommonMethod => "encryption handshake: no method both sides accept",
            MseError::Finished => "encryption handshake already over",
        })
    }
}

impl std::error::Error for MseError {}

/// The two RC4 streams of a connection once the handshake chose RC4.
pub struct Cipher {
    enc: Rc4,
    dec: Rc4,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(RC4)")
    }
}

impl Cipher {
    /// Encrypts bytes about to be sent, in place.
    pub fn encrypt(&mut self, buf: &mut [u8]) {
        self.enc.apply_keystream(buf);
    }

    /// Decrypts bytes just received, in place.
    pub fn decrypt(&mut self, buf: &mut [u8]) {
        self.dec.apply_keystream(buf);
    }
}

/// A finished handshake.
#[derive(Debug)]
pub struct Done {
    /// The method chosen: [`PLAINTEXT`] or [`RC4`].
    pub method: u32,
    /// The streams, for RC4; `None` when the rest is plaintext.
    pub cipher: Option<Cipher>,
    /// The SKEY (info hash) the initiator named.
    pub skey: [u8; 20],
    /// Receiver: the initiator's initial payload, decrypted (usually its
    /// BitTorrent handshake). Empty for the initiator.
    pub ia: Vec<u8>,
    /// Bytes that came after the handshake, already decrypted.
    pub rest: Vec<u8>,
}

/// What feeding bytes led to.
#[derive(Debug)]
pub enum Progress {
    NeedMore,
    Done(Box<Done>),
}

enum State {
    /// Initiator: waiting for Yb.
    AwaitYb,
    /// Initiator: looking for ENCRYPT(VC) after Yb.
    FindVc {
        marker: [u8; 8],
    },
    /// Initiator: reading crypto_select and len(PadD), then PadD.
    ReadSelect,
    ReadPadD {
        select: u32,
        len: usize,
    },
    /// Receiver: waiting for Ya.
    AwaitYa,
    /// Receiver: looking for HASH("req1", S) after Ya.
    FindReq1 {
        marker: [u8; 20],
    },
    /// Receiver: the obfuscated SKEY.
    ReadSkey,
    /// Receiver: VC, crypto_provide, len(PadC).
    ReadProvide,
    ReadPadC {
        provide: u32,
        len: usize,
    },
    ReadIa {
        provide: u32,
        len: usize,
    },
    Over,
}

/// One side of an MSE handshake.
pub struct Handshake {
    state: State,
    private: BigUint,
    secret: Vec<u8>,
    skey: [u8; 20],
    /// Receiver: the SKEYs it accepts.
    known: Vec<[u8; 20]>,
    /// Methods this side accepts (and, initiating, provides).
    methods: u32,
    /// Padding of our last step (PadC, PadD).
    pad: Vec<u8>,
    /// Receiver: PadB, sent with Yb.
    pad_b: Vec<u8>,
    /// Initiator: the initial payload for step 3.
    ia: Vec<u8>,
    /// Bytes received and not yet used (bounded by the steps' limits).
    buf: Vec<u8>,
    enc: Option<Rc4>,
    dec: Option<Rc4>,
}

fn prime() -> BigUint {
    BigUint::parse_bytes(PRIME.as_bytes(), 16).expect("the spec's prime is hexadecimal")
}

/// Our public key for `private`: 2^private mod P, 96 bytes big-endian.
fn public_key(private: &BigUint) -> [u8; KEY_LEN] {
    to_key(&BigUint::from(2u32).modpow(private, &prime()))
}

fn to_key(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    out[KEY_LEN - bytes.len().min(KEY_LEN)..].copy_from_slice(&bytes[bytes.len().saturating_sub(KEY_LEN)..]);
    out
}

fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RC4 keyed for one direction, its first 1024 bytes discarded.
fn rc4(name: &[u8], secret: &[u8], skey: &[u8; 20]) -> Rc4 {
    let key = hash(&[name, secret, skey]);
    let mut c = Rc4::new_from_slice(&key).expect("RC4 takes keys of 1 to 256 bytes");
    c.apply_keystream(&mut [0u8; DISCARD]);
    c
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

impl Handshake {
    /// Starts the initiator's side: `private` is 20 random bytes (a
    /// 160-bit exponent), `pad_a` and `pad_c` at most 512 random bytes
    /// each, `methods` what it provides ([`PLAINTEXT`] | [`RC4`]), `ia` the
    /// first bytes of the stream (its BitTorrent handshake). Appends step
    /// 1 to `out`.
    pub fn initiator(
        skey: [u8; 20],
        private: &[u8; 20],
        pad_a: &[u8],
        pad_c: &[u8],
        methods: u32,
        ia: &[u8],
        out: &mut Vec<u8>,
    ) -> Handshake {
        let private = BigUint::from_bytes_be(private);
        out.extend_from_slice(&public_key(&private));
        out.extend_from_slice(&pad_a[..pad_a.len().min(MAX_PAD)]);
        Handshake {
            state: State::AwaitYb,
            private,
            secret: Vec::new(),
            skey,
            known: Vec::new(),
            methods,
            pad: pad_c[..pad_c.len().min(MAX_PAD)].to_vec(),
            pad_b: Vec::new(),
            ia: ia[..ia.len().min(MAX_IA)].to_vec(),
            buf: Vec::new(),
            enc: None,
            dec: None,
        }
    }

    /// Starts the receiver's side: `known` the info hashes it serves,
    /// `methods` what it accepts (RC4 alone to require encryption); it
    /// picks RC4 when both sides accept it. `pad_b` and `pad_d`: at most
    /// 512 random bytes each.
    pub fn receiver(
        known: Vec<[u8; 20]>,
        private: &[u8; 20],
        pad_b: &[u8],
        pad_d: &[u8],
        methods: u32,
    ) -> Handshake {
        Handshake {
            state: State::AwaitYa,
            private: BigUint::from_bytes_be(private),
            secret: Vec::new(),
            skey: [0; 20],
            known,
            methods,
            pad: pad_d[..pad_d.len().min(MAX_PAD)].to_vec(),
            pad_b: pad_b[..pad_b.len().min(MAX_PAD)].to_vec(),
            ia: Vec::new(),
            buf: Vec::new(),
            enc: None,
            dec: None,
        }
    }

    /// Bytes from the peer; what to send is appended to `out`. After
    /// `Done` or an error the handshake is over.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, MseError> {
        if matches!(self.state, State::Over) {
            return Err(MseError::Finished);
        }
        self.buf.extend_from_slice(input);
        let result = self.advance(out);
        if !matches!(result, Ok(Progress::NeedMore)) {
            self.state = State::Over;
        }
        result
    }

    fn decrypt(&mut self, n: usize) -> Vec<u8> {
        let mut bytes: Vec<u8> = self.buf.drain(..n).collect();
        if let Some(dec) = &mut self.dec {
            dec.apply_keystream(&mut bytes);
        }
        bytes
    }

    fn shared_secret(&mut self, their_key: &[u8]) {
        let y = BigUint::from_bytes_be(their_key);
        self.secret = to_key(&y.modpow(&self.private, &prime())).to_vec();
    }

    fn advance(&mut self, out: &mut Vec<u8>) -> Result<Progress, MseError> {
        loop {
            match std::mem::replace(&mut self.state, State::Over) {
                State::Over => return Err(MseError::Finished),
                State::AwaitYb => {
                    if self.buf.len() < KEY_LEN {
                        self.state = State::AwaitYb;
                        return Ok(Progress::NeedMore);
                    }
                    let yb: Vec<u8> = self.buf.drain(..KEY_LEN).collect();
                    self.shared_secret(&yb);
                    let s = self.secret.clone();
                    out.extend_from_slice(&hash(&[b"req1", &s]));
                    let req2 = hash(&[b"req2", &self.skey]);
                    let req3 = hash(&[b"req3", &s]);
                    out.extend(req2.iter().zip(req3).map(|(a, b)| a ^ b));
                    let mut enc = rc4(b"keyA", &s, &self.skey);
                    let mut msg = VC.to_vec();
                    msg.extend_from_slice(&self.methods.to_be_bytes());
                    msg.extend_from_slice(&(self.pad.len() as u16).to_be_bytes());
                    msg.extend_from_slice(&self.pad);
                    msg.extend_from_slice(&(self.ia.len() as u16).to_be_bytes());
                    msg.extend_from_slice(&self.ia);
                    enc.apply_keystream(&mut msg);
                    out.extend_from_slice(&msg);
                    let mut marker = VC;
                    rc4(b"keyB", &s, &self.skey).apply_keystream(&mut marker);
                    self.enc = Some(enc);
                    self.state = State::FindVc { marker };
                }
                State::FindVc { marker } => {
                    let Some(at) = self.buf.windows(8).position(|w| w == marker) else {
                        if self.buf.len() >= MAX_PAD + 8 {
                            return Err(MseError::NoSync);
                        }
                        self.state = State::FindVc { marker };
                        return Ok(Progress::NeedMore);
                    };
                    if at > MAX_PAD {
                        return Err(MseError::NoSync);
                    }
                    self.buf.drain(..at + 8);
                    let mut dec = rc4(b"keyB", &self.secret, &self.skey);
                    dec.apply_keystream(&mut [0u8; 8]);
                    self.dec = Some(dec);
                    self.state = State::ReadSelect;
                }
                State::ReadSelect => {
                    if self.buf.len() < 6 {
                        self.state = State::ReadSelect;
                        return Ok(Progress::NeedMore);
                    }
                    let b = self.decrypt(6);
                    let select = be32(&b);
                    if select.count_ones() != 1 || select & self.methods == 0 {
                        return Err(MseError::NoCommonMethod);
                    }
                    let len = be16(&b[4..]);
                    if len > MAX_PAD {
                        return Err(MseError::BadPadLength);
                    }
                    self.state = State::ReadPadD { select, len };
                }
                State::ReadPadD { select, len } => {
                    if self.buf.len() < len {
                        self.state = State::ReadPadD { select, len };
                        return Ok(Progress::NeedMore);
                    }
                    self.decrypt(len);
                    return Ok(Progress::Done(Box::new(self.finish(select, Vec::new()))));
                }
                State::AwaitYa => {
                    if self.buf.len() < KEY_LEN {
                        self.state = State::AwaitYa;
                        return Ok(Progress::NeedMore);
                    }
                    let ya: Vec<u8> = self.buf.drain(..KEY_LEN).collect();
                    self.shared_secret(&ya);
                    out.extend_from_slice(&public_key(&self.private));
                    out.append(&mut self.pad_b);
                    let marker = hash(&[b"req1", &self.secret]);
                    self.state = State::FindReq1 { marker };
                }
                State::FindReq1 { marker } => {
                    let Some(at) = self.buf.windows(20).position(|w| w == marker) else {
                        if self.buf.len() >= MAX_PAD + 20 {
                            return Err(MseError::NoSync);
                        }
                        self.state = State::FindReq1 { marker };
                        return Ok(Progress::NeedMore);
                    };
                    if at > MAX_PAD {
                        return Err(MseError::NoSync);
                    }
                    self.buf.drain(..at + 20);
                    self.state = State::ReadSkey;
                }
                State::ReadSkey => {
                    if self.buf.len() < 20 {
                        self.state = State::ReadSkey;
                        return Ok(Progress::NeedMore);
                    }
                    let req3 = hash(&[b"req3", &self.secret]);
                    let req2: Vec<u8> = self.buf.drain(..20).zip(req3).map(|(a, b)| a ^ b).collect();
                    let skey = self
                        .known
                        .iter()
                        .find(|k| hash(&[b"req2", &k[..]])[..] == req2[..])
                        .ok_or(MseError::UnknownTorrent)?;
                    self.skey = *skey;
                    self.dec = Some(rc4(b"keyA", &self.secret, &self.skey));
                    self.enc = Some(rc4(b"keyB", &self.secret, &self.skey));
                    self.state = State::ReadProvide;
                }
                State::ReadProvide => {
                    if self.buf.len() < 14 {
                        self.state = State::ReadProvide;
                        return Ok(Progress::NeedMore);
                    }
                    let b = self.decrypt(14);
                    if b[..8] != VC {
                        return Err(MseError::BadVc);
                    }
                    let len = be16(&b[12..]);
                    if len > MAX_PAD {
                        return Err(MseError::BadPadLength);
                    }
                    self.state = State::ReadPadC {
                        provide: be32(&b[8..]),
                        len,
                    };
                }
                State::ReadPadC { provide, len } => {
                    if self.buf.len() < len + 2 {
                        self.state = State::ReadPadC { provide, len };
                        return Ok(Progress::NeedMore);
                    }
                    let b = self.decrypt(len + 2);
                    let len = be16(&b[len..]);
                    if len > MAX_IA {
                        return Err(MseError::BadIaLength);
                    }
                    self.state = State::ReadIa { provide, len };
                }
                State::ReadIa { provide, len } => {
                    if self.buf.len() < len {
                        self.state = State::ReadIa { provide, len };
                        return Ok(Progress::NeedMore);
                    }
                    let ia = self.decrypt(len);
                    let common = provide & self.methods;
                    let select = if common & RC4 != 0 {
                        RC4
                    } else if common & PLAINTEXT != 0 {
                        PLAINTEXT
                    } else {
                        return Err(MseError::NoCommonMethod);
                    };
                    let mut msg = VC.to_vec();
                    msg.extend_from_slice(&select.to_be_bytes());
                    msg.extend_from_slice(&(self.pad.len() as u16).to_be_bytes());
                    msg.extend_from_slice(&self.pad);
                    if let Some(enc) = &mut self.enc {
                        enc.apply_keystream(&mut msg);
                    }
                    out.extend_from_slice(&msg);
                    return Ok(Progress::Done(Box::new(self.finish(select, ia))));
                }
            }
        }
    }

    /// The outcome once `select` is known; what is left in the buffer is
    /// the stream's start.
    fn finish(&mut self, select: u32, ia: Vec<u8>) -> Done {
        let (enc, dec) = (self.enc.take(), self.dec.take());
        let mut rest = std::mem::take(&mut self.buf);
        let cipher = match (select, enc, dec) {
            (RC4, Some(enc), Some(dec)) => {
                let mut c = Cipher { enc, dec };
                c.decrypt(&mut rest);
                Some(c)
            }
            _ => None,
        };
        Done {
            method: select,
            cipher,
            skey: self.skey,
            ia,
            rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEY: [u8; 20] = [7; 20];

    struct Pair {
        a: Handshake,
        b: Handshake,
        a_out: Vec<u8>,
    }

    fn pair(pads: [usize; 4], provide: u32, accept: u32, ia: &[u8]) -> Pair {
        let mut a_out = Vec::new();
        let a = Handshake::initiator(
            SKEY,
            &[0x11; 20],
            &vec![1; pads[0]],
            &vec![3; pads[2]],
            provide,
            ia,
            &mut a_out,
        );
        let b = Handshake::receiver(
            vec![[9; 20], SKEY],
            &[0x22; 20],
            &vec![2; pads[1]],
            &vec![4; pads[3]],
            accept,
        );
        Pair { a, b, a_out }
    }

    /// Runs both sides, moving bytes `step` at a time, the receiver
    /// sending `b_after` through its cipher once done; the two outcomes.
    fn run(mut p: Pair, step: usize, b_after: &[u8]) -> (Result<Done, MseError>, Result<Done, MseError>) {
        let mut to_b = std::mem::take(&mut p.a_out);
        let mut to_a = Vec::new();
        let (mut da, mut db) = (None, None);
        for _ in 0..10_000 {
            if db.is_none() && !to_b.is_empty() {
                let n = step.min(to_b.len());
                let chunk: Vec<u8> = to_b.drain(..n).collect();
                match p.b.feed(&chunk, &mut to_a) {
                    Ok(Progress::NeedMore) => {}
                    Ok(Progress::Done(mut d)) => {
                        let mut after = b_after.to_vec();
                        if let Some(c) = &mut d.cipher {
                            c.encrypt(&mut after);
                        }
                        to_a.extend_from_slice(&after);
                        db = Some(Ok(*d));
                    }
                    Err(e) => db = Some(Err(e)),
                }
            }
            if da.is_none() && !to_a.is_empty() {
                let n = step.min(to_a.len());
                let chunk: Vec<u8> = to_a.drain(..n).collect();
                let mut more = Vec::new();
                match p.a.feed(&chunk, &mut more) {
                    Ok(Progress::NeedMore) => {}
                    Ok(Progress::Done(d)) => da = Some(Ok(*d)),
                    Err(e) => da = Some(Err(e)),
                }
                to_b.extend_from_slice(&more);
            }
            if (da.is_some() || to_a.is_empty()) && (db.is_some() || to_b.is_empty()) {
                break;
            }
        }
        (
            da.unwrap_or(Err(MseError::Finished)),
            db.unwrap_or(Err(MseError::Finished)),
        )
    }

    #[test]
    fn initiator_and_receiver_agree_with_any_padding_in_any_cuts() {
        let ia = b"\x13BitTorrent protocol and the rest";
        for (pads, step) in [
            ([0, 0, 0, 0], 1),
            ([512, 512, 512, 512], 1000),
            ([17, 300, 5, 0], 7),
            ([511, 0, 512, 33], 96),
        ] {
            let (a, b) = run(pair(pads, PLAINTEXT | RC4, PLAINTEXT | RC4, ia), step, b"");
            let (mut a, mut b) = (a.unwrap(), b.unwrap());
            assert_eq!((a.method, b.method), (RC4, RC4), "{pads:?}");
            assert_eq!(b.skey, SKEY);
            assert_eq!(b.ia, ia);
            assert!(a.rest.is_empty() && b.rest.is_empty());
            // The streams line up both ways.
            let (ca, cb) = (a.cipher.as_mut().unwrap(), b.cipher.as_mut().unwrap());
            let mut msg = b"have 17".to_vec();
            ca.encrypt(&mut msg);
            assert_ne!(&msg, b"have 17");
            cb.decrypt(&mut msg);
            assert_eq!(&msg, b"have 17");
            let mut back = b"piece".to_vec();
            cb.encrypt(&mut back);
            ca.decrypt(&mut back);
            assert_eq!(&back, b"piece");
        }
    }

    #[test]
    fn the_stream_after_the_handshake_and_plaintext_selection() {
        // Bytes the receiver sends right after its last step reach the
        // initiator in the same read: they come out in `rest`, decrypted.
        let (a, _) = run(pair([5, 6, 7, 8], RC4, RC4, b"ia"), 10_000, b"bitfield");
        assert_eq!(a.unwrap().rest, b"bitfield");
        // A receiver that accepts only plaintext selects it; the rest is
        // then plaintext both ways.
        let (a, b) = run(
            pair([0, 9, 0, 9], PLAINTEXT | RC4, PLAINTEXT, b"hello"),
            10_000,
            b"plain",
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.method, b.method), (PLAINTEXT, PLAINTEXT));
        assert!(a.cipher.is_none() && b.cipher.is_none());
        assert_eq!(b.ia, b"hello");
        assert_eq!(a.rest, b"plain");
    }

    #[test]
    fn refusals() {
        // Encryption required, the initiator offers plaintext only.
        let (_, b) = run(pair([0; 4], PLAINTEXT, RC4, b""), 1000, b"");
        assert_eq!(b.unwrap_err(), MseError::NoCommonMethod);
        // A torrent the receiver does not have.
        let mut out = Vec::new();
        let a = Handshake::initiator([8; 20], &[1; 20], b"", b"", RC4, b"", &mut out);
        let b = Handshake::receiver(vec![SKEY], &[2; 20], b"", b"", RC4);
        let (_, b) = run(Pair { a, b, a_out: out }, 1000, b"");
        assert_eq!(b.unwrap_err(), MseError::UnknownTorrent);
        // A plain BitTorrent handshake, or garbage: no sync within the bound.
        let mut b = Handshake::receiver(vec![SKEY], &[2; 20], b"", b"", RC4 | PLAINTEXT);
        let mut out = Vec::new();
        assert!(matches!(
            b.feed(&[0x13; KEY_LEN], &mut out),
            Ok(Progress::NeedMore)
        ));
        assert_eq!(out.len(), KEY_LEN, "Yb goes out as soon as Ya came");
        assert!(matches!(
            b.feed(&[0; MAX_PAD + 19], &mut out),
            Ok(Progress::NeedMore)
        ));
        assert_eq!(b.feed(&[0], &mut out).unwrap_err(), MseError::NoSync);
        assert_eq!(b.feed(&[0], &mut out).unwrap_err(), MseError::Finished);
        let mut out = Vec::new();
        let mut a = Handshake::initiator(SKEY, &[1; 20], b"", b"", RC4, b"", &mut out);
        assert!(matches!(
            a.feed(&[5; KEY_LEN + MAX_PAD + 7], &mut out),
            Ok(Progress::NeedMore)
        ));
        assert_eq!(a.feed(&[5], &mut out).unwrap_err(), MseError::NoSync);
    }

    #[test]
    fn public_keys_are_96_bytes_of_a_known_group() {
        // 2^1 mod P = 2; 2^0 = 1: the key encoding pads to 96 bytes.
        let mut two = [0u8; KEY_LEN];
        two[KEY_LEN - 1] = 2;
        assert_eq!(public_key(&BigUint::from(1u32)), two);
        // (2^a)^b = (2^b)^a: both sides derive one secret.
        let (x, y) = (
            BigUint::from_bytes_be(&[0x5a; 20]),
            BigUint::from_bytes_be(&[0xa5; 20]),
        );
        let (gx, gy) = (public_key(&x), public_key(&y));
        let s1 = BigUint::from_bytes_be(&gy).modpow(&x, &prime());
        let s2 = BigUint::from_bytes_be(&gx).modpow(&y, &prime());
        assert_eq!(s1, s2);
        assert_eq!(prime().bits(), 768);
    }
}
