//! Interop harness for `bt::mse` (run by tests/interop/run.py against
//! libtorrent with encryption forced): one encrypted BitTorrent handshake,
//! either role, on blocking sockets with 10 s timeouts.
//!
//! `mse_handshake connect HOST:PORT INFOHASH_HEX`: initiates MSE (RC4
//! only), sends our BitTorrent handshake as the initial payload, and
//! checks the peer's handshake comes back through RC4 naming the hash.
//! `mse_handshake listen INFOHASH_HEX`: prints `listening PORT`, accepts
//! one connection, receives MSE (RC4 only), checks the initial payload is
//! a handshake for the hash, answers with ours, encrypted.
//! Prints `ok initiator rc4` / `ok receiver rc4` and exits 0 on success.

use pytorrent::bt::mse::{Cipher, Done, Handshake, Progress, RC4};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn bt_handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    let mut h = vec![19];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
    h.extend_from_slice(info_hash);
    h.extend_from_slice(b"-PY0100-msetestmsete");
    h
}

fn check_handshake(h: &[u8], info_hash: &[u8; 20]) -> Result<(), String> {
    if h.len() < 68 || &h[..20] != b"\x13BitTorrent protocol" || &h[28..48] != info_hash {
        return Err(format!(
            "not a BitTorrent handshake for the hash: {:02x?}",
            &h[..h.len().min(68)]
        ));
    }
    Ok(())
}

fn drive(stream: &mut TcpStream, mut hs: Handshake, mut out: Vec<u8>) -> Result<Done, String> {
    let mut buf = [0u8; 4096];
    loop {
        stream.write_all(&out).map_err(|e| format!("write: {e}"))?;
        out.clear();
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the peer closed the connection".into());
        }
        match hs.feed(&buf[..n], &mut out).map_err(|e| e.to_string())? {
            Progress::NeedMore => {}
            Progress::Done(done) => {
                stream.write_all(&out).map_err(|e| format!("write: {e}"))?;
                return Ok(*done);
            }
        }
    }
}

/// At least `n` decrypted bytes: `have` first, then more from the socket.
fn read_at_least(
    stream: &mut TcpStream,
    cipher: &mut Cipher,
    mut have: Vec<u8>,
    n: usize,
) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 4096];
    while have.len() < n {
        let got = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if got == 0 {
            return Err("the peer closed the connection".into());
        }
        cipher.decrypt(&mut buf[..got]);
        have.extend_from_slice(&buf[..got]);
    }
    Ok(have)
}

fn run(args: &[String]) -> Result<&'static str, String> {
    let hex = |s: &str| -> Result<[u8; 20], String> {
        let b: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| s.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()))
            .collect::<Option<_>>()
            .ok_or("bad hex")?;
        b.try_into().map_err(|_| "not 20 bytes".to_string())
    };
    let mut private = [0u8; 20];
    pytorrent::rand::os_random(&mut private).map_err(|e| format!("random: {e}"))?;
    match args {
        [mode, addr, hash] if mode == "connect" => {
            let hash = hex(hash)?;
            let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            let hs = Handshake::initiator(
                hash,
                &private,
                &[0xaa; 40],
                &[0xbb; 7],
                RC4,
                &bt_handshake(&hash),
                &mut out,
            );
            let done = drive(&mut s, hs, out)?;
            let mut cipher = done.cipher.ok_or("the peer did not select RC4")?;
            let reply = read_at_least(&mut s, &mut cipher, done.rest, 68)?;
            check_handshake(&reply, &hash)?;
            Ok("ok initiator rc4")
        }
        [mode, hash] if mode == "listen" => {
            let hash = hex(hash)?;
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            println!("listening {}", l.local_addr().map_err(|e| e.to_string())?.port());
            let (mut s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            let hs = Handshake::receiver(vec![hash], &private, &[0xcc; 100], &[0xdd; 3], RC4);
            let done = drive(&mut s, hs, Vec::new())?;
            if done.skey != hash {
                return Err("the peer named another torrent".into());
            }
            let mut cipher = done.cipher.ok_or("RC4 was not selected")?;
            // libtorrent sends its handshake as the initial payload.
            let theirs = [done.ia, done.rest].concat();
            let theirs = read_at_least(&mut s, &mut cipher, theirs, 68)?;
            check_handshake(&theirs, &hash)?;
            let mut ours = bt_handshake(&hash);
            cipher.encrypt(&mut ours);
            s.write_all(&ours).map_err(|e| format!("write: {e}"))?;
            // Its next message (a bitfield or the extension handshake)
            // decrypts to a sane length prefix.
            let next = read_at_least(&mut s, &mut cipher, theirs[68..].to_vec(), 5)?;
            let len = u32::from_be_bytes([next[0], next[1], next[2], next[3]]);
            if len == 0 || len > 1 << 20 {
                return Err(format!(
                    "the message after the handshake decrypts to length {len}"
                ));
            }
            Ok("ok receiver rc4")
        }
        _ => Err("usage: mse_handshake connect HOST:PORT INFOHASH_HEX | listen INFOHASH_HEX".into()),
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(msg) => {
            println!("{msg}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mse_handshake: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
