//! Faults between processes: a rendezvous on TCP through which every rank stays connected to
//! rank 0 for the whole run ([`Rendezvous`]), and a deadline on every collective call
//! ([`Watchdog`]).
//!
//! A rank that dies (killed, crashed, its node lost) closes its connection at once; rank 0 sees
//! the closed connection, names the rank, tells every other rank, and all of them exit with that
//! message instead of waiting forever in the next collective call. A rank that hangs without
//! dying is caught by the watchdog of the ranks waiting for it. The rendezvous also carries the
//! start-up payload rank 0 hands to everybody (NCCL's unique id).

use anyhow::{anyhow, bail, Context, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit status of a rank stopped because another rank failed or a collective call timed out.
pub const EXIT_PEER_FAILED: i32 = 3;

const BYE: u8 = 0;
const FAULT: u8 = 1;

/// Who a connected rank is (sent when it connects).
#[derive(Debug, Clone)]
struct Member {
    rank: usize,
    pid: u32,
    host: String,
}

impl Member {
    fn describe(&self) -> String {
        format!("rank {} (pid {} on {})", self.rank, self.pid, self.host)
    }
}

/// This process's end of the rendezvous. Dropping it without [`Rendezvous::finish`] (an error)
/// closes the connection, which the other ranks report as this rank stopping.
pub struct Rendezvous {
    /// Rank 0: the connection to every other rank; others: the one to rank 0.
    streams: Arc<Mutex<Vec<TcpStream>>>,
    finishing: Arc<AtomicBool>,
}

/// Stops this process with `message` (printed as a rank's error line).
fn stop(rank: usize, message: &str) -> ! {
    eprintln!("brainmvp rank {rank}: error: {message}; stopping");
    std::process::exit(EXIT_PEER_FAILED)
}

fn write_text(stream: &mut TcpStream, text: &str) -> std::io::Result<()> {
    stream.write_all(&(text.len() as u32).to_le_bytes())?;
    stream.write_all(text.as_bytes())
}

fn read_bytes(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let length = u32::from_le_bytes(length) as usize;
    if length > 1 << 20 {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "oversized message",
        ));
    }
    let mut bytes = vec![0u8; length];
    stream.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_text(stream: &mut TcpStream) -> std::io::Result<String> {
    Ok(String::from_utf8_lossy(&read_bytes(stream)?).into_owned())
}

/// This machine's host name, for messages.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

impl Rendezvous {
    /// Rank 0: listens on `port` of every interface (0 picks a free port); returns the listener
    /// and its port, for [`Rendezvous::serve`].
    pub fn listen(port: u16) -> Result<(TcpListener, u16)> {
        let listener = TcpListener::bind(("0.0.0.0", port))
            .with_context(|| format!("rendezvous: cannot listen on port {port}"))?;
        let port = listener.local_addr()?.port();
        Ok((listener, port))
    }

    /// Rank 0: waits for the other `world_size - 1` ranks (at most `timeout`), hands each
    /// `payload`, then watches them.
    pub fn serve(
        listener: TcpListener,
        world_size: usize,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Self> {
        let members = accept_all(&listener, world_size, payload, timeout)?;
        let rendezvous = Self {
            streams: Arc::new(Mutex::new(Vec::new())),
            finishing: Arc::new(AtomicBool::new(false)),
        };
        for (member, stream) in members {
            let reader = stream.try_clone()?;
            lock(&rendezvous.streams).push(stream);
            let streams = Arc::clone(&rendezvous.streams);
            let finishing = Arc::clone(&rendezvous.finishing);
            std::thread::Builder::new()
                .name(format!("watch-rank-{}", member.rank))
                .spawn(move || watch_member(reader, member, streams, finishing))?;
        }
        Ok(rendezvous)
    }

    /// Rank `rank` > 0: connects to rank 0 at `host:port` (retrying until `timeout`), returns
    /// the payload, then watches rank 0.
    pub fn join(rank: usize, host: &str, port: u16, timeout: Duration) -> Result<(Self, Vec<u8>)> {
        let mut stream = connect(host, port, timeout)?;
        stream.set_nodelay(true)?;
        stream.write_all(&(rank as u32).to_le_bytes())?;
        stream.write_all(&std::process::id().to_le_bytes())?;
        write_text(&mut stream, &host_name())?;
        stream.set_read_timeout(Some(timeout))?;
        let payload = read_bytes(&mut stream)
            .with_context(|| format!("rendezvous: rank 0 at {host}:{port} did not answer"))?;
        stream.set_read_timeout(None)?;
        let rendezvous = Self {
            streams: Arc::new(Mutex::new(vec![stream.try_clone()?])),
            finishing: Arc::new(AtomicBool::new(false)),
        };
        let finishing = Arc::clone(&rendezvous.finishing);
        let main = format!("rank 0 ({host}:{port})");
        std::thread::Builder::new()
            .name("watch-rank-0".into())
            .spawn(move || watch_main(stream, rank, main, finishing))?;
        Ok((rendezvous, payload))
    }

    /// Ends the watch: this rank is done, its connection closing is no longer a fault.
    pub fn finish(self) {
        self.finishing.store(true, Ordering::SeqCst);
        for stream in lock(&self.streams).iter_mut() {
            let _ = stream.write_all(&[BYE]);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = (host, port)
            .to_socket_addrs()
            .map_err(anyhow::Error::from)
            .and_then(|mut addresses| {
                let address = addresses.next().ok_or_else(|| anyhow!("no address"))?;
                Ok(TcpStream::connect_timeout(
                    &address,
                    Duration::from_secs(5),
                )?)
            });
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(err) if Instant::now() >= deadline => bail!(
                "rendezvous: cannot reach rank 0 at {host}:{port} within {} s: {err:#}",
                timeout.as_secs()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Accepts every other rank, reads who it is, sends it `payload`.
fn accept_all(
    listener: &TcpListener,
    world_size: usize,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<(Member, TcpStream)>> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let mut members: Vec<(Member, TcpStream)> = Vec::new();
    while members.len() + 1 < world_size {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(timeout))?;
                let member = read_member(&mut stream)?;
                stream.write_all(&(payload.len() as u32).to_le_bytes())?;
                stream.write_all(payload)?;
                stream.set_read_timeout(None)?;
                members.push((member, stream));
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing: Vec<String> = (1..world_size)
                        .filter(|rank| members.iter().all(|(m, _)| m.rank != *rank))
                        .map(|rank| rank.to_string())
                        .collect();
                    bail!(
                        "rendezvous: ranks [{}] did not connect to rank 0 within {} s",
                        missing.join(", "),
                        timeout.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => return Err(err).context("rendezvous: accept"),
        }
    }
    Ok(members)
}

fn read_member(stream: &mut TcpStream) -> Result<Member> {
    let mut word = [0u8; 4];
    stream.read_exact(&mut word)?;
    let rank = u32::from_le_bytes(word) as usize;
    stream.read_exact(&mut word)?;
    let pid = u32::from_le_bytes(word);
    let host = read_text(stream)?;
    Ok(Member { rank, pid, host })
}

/// Rank 0's watch over one rank: its connection closing before its goodbye stops everybody.
fn watch_member(
    mut stream: TcpStream,
    member: Member,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    finishing: Arc<AtomicBool>,
) {
    let mut said_bye = false;
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] == BYE => said_bye = true,
            Ok(1) => {}
            _ => break,
        }
    }
    if said_bye || finishing.load(Ordering::SeqCst) {
        return;
    }
    let message = format!(
        "{} stopped without finishing (killed, crashed or its node failed)",
        member.describe()
    );
    for other in lock(&streams).iter_mut() {
        let _ = other.write_all(&[FAULT]);
        let _ = write_text(other, &message);
    }
    stop(0, &message)
}

/// Another rank's watch over rank 0: a fault message or a closed connection stops this rank.
fn watch_main(mut stream: TcpStream, rank: usize, main: String, finishing: Arc<AtomicBool>) {
    let mut byte = [0u8; 1];
    let message = match stream.read(&mut byte) {
        Ok(1) if byte[0] == BYE => return,
        Ok(1) => read_text(&mut stream).unwrap_or_else(|_| "another rank failed".into()),
        _ => format!("lost {main} without a goodbye (it stopped, crashed or its node failed)"),
    };
    if !finishing.load(Ordering::SeqCst) {
        stop(rank, &message)
    }
}

/// Deadline on collective calls: a call that has not returned within `timeout` stops the
/// process with a message naming the call (a rank that hangs without dying).
pub struct Watchdog {
    armed: Arc<Mutex<Option<(Instant, String)>>>,
}

impl Watchdog {
    /// Starts the watching thread of rank `rank`.
    pub fn start(rank: usize, timeout: Duration) -> Result<Self> {
        let armed: Arc<Mutex<Option<(Instant, String)>>> = Arc::new(Mutex::new(None));
        let watched = Arc::clone(&armed);
        std::thread::Builder::new()
            .name("collective-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(250).min(timeout));
                if let Some((since, what)) = lock(&watched).as_ref() {
                    if since.elapsed() > timeout {
                        stop(
                            rank,
                            &format!(
                                "{what} did not complete within {} s: another rank stalled or \
                                 the network between the ranks failed",
                                timeout.as_secs()
                            ),
                        );
                    }
                }
            })?;
        Ok(Self { armed })
    }

    /// Runs `call` (a collective call described by `what`) under the deadline.
    pub fn guard<T>(&self, what: &str, call: impl FnOnce() -> T) -> T {
        *lock(&self.armed) = Some((Instant::now(), what.to_string()));
        let result = call();
        *lock(&self.armed) = None;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_zero_hands_the_payload_to_every_rank() {
        let (listener, port) = Rendezvous::listen(0).unwrap();
        let joiners: Vec<_> = (1..3)
            .map(|rank| {
                std::thread::spawn(move || {
                    let (rendezvous, payload) =
                        Rendezvous::join(rank, "127.0.0.1", port, Duration::from_secs(10)).unwrap();
                    rendezvous.finish();
                    payload
                })
            })
            .collect();
        let main = Rendezvous::serve(listener, 3, b"nccl-id", Duration::from_secs(10)).unwrap();
        for joiner in joiners {
            assert_eq!(joiner.join().unwrap(), b"nccl-id");
        }
        main.finish();
    }

    #[test]
    fn missing_ranks_are_named_after_the_timeout() {
        let (listener, _port) = Rendezvous::listen(0).unwrap();
        let error = Rendezvous::serve(listener, 3, b"", Duration::from_millis(300)).err();
        let message = format!("{:#}", error.unwrap());
        assert!(
            message.contains("ranks [1, 2] did not connect"),
            "{message}"
        );
    }

    #[test]
    fn an_unreachable_rank_zero_is_named() {
        let (listener, port) = Rendezvous::listen(0).unwrap();
        drop(listener);
        let error = Rendezvous::join(1, "127.0.0.1", port, Duration::from_millis(300)).err();
        let message = format!("{:#}", error.unwrap());
        assert!(
            message.contains(&format!("cannot reach rank 0 at 127.0.0.1:{port}")),
            "{message}"
        );
    }
}
