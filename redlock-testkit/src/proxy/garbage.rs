//! Garbage mode: the proxy parses the client's commands and answers them
//! itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::accept::reset;
use super::state::{Participant, Shared};
use super::{Mode, MAX_COMMAND_BYTES};

/// A connection in garbage mode: the proxy answers every command itself.
pub(super) async fn garbage(shared: Arc<Shared>, mut client: TcpStream, epoch: u64) {
    let mut rx = shared.state.subscribe();
    let mut state = rx.borrow_and_update().clone();
    let me = Participant::register(&shared, state.generation);
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let reply = match &state.mode {
            Mode::Garbage(g) if !state.shutdown && state.reset_epoch == epoch => g.bytes().to_vec(),
            _ => return reset(client, &shared),
        };
        tokio::select! {
            biased;
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                state = rx.borrow_and_update().clone();
                me.ack(state.generation);
            }
            read = client.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    loop {
                        match parse_command(&pending) {
                            Parsed::Command(used, name) => {
                                pending.drain(..used);
                                let answer: &[u8] = match name.as_str() {
                                    "PING" => b"+PONG\r\n",
                                    "AUTH" | "HELLO" | "SELECT" | "CLIENT" | "INFO" | "READONLY"
                                    | "QUIT" => b"+OK\r\n",
                                    _ => {
                                        shared.counters.garbage_replies.fetch_add(1, Ordering::Relaxed);
                                        &reply
                                    }
                                };
                                if client.write_all(answer).await.is_err() {
                                    return;
                                }
                            }
                            Parsed::Incomplete if pending.len() <= MAX_COMMAND_BYTES => break,
                            Parsed::Incomplete | Parsed::Invalid => {
                                let _ = client.write_all(b"-ERR Protocol error\r\n").await;
                                return;
                            }
                        }
                    }
                }
            },
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A whole command: the bytes it used and its name, upper case.
    Command(usize, String),
    /// More bytes are needed.
    Incomplete,
    /// Not a command.
    Invalid,
}

/// Finds `\r\n` from `from`; the index of `\r`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn parse_number(bytes: &[u8]) -> Option<usize> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses one client command: a RESP array of bulk strings, or an inline
/// command (a line of words).
fn parse_command(buf: &[u8]) -> Parsed {
    let Some(&first) = buf.first() else {
        return Parsed::Incomplete;
    };
    if first != b'*' {
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            return Parsed::Incomplete;
        };
        let line = String::from_utf8_lossy(&buf[..end]);
        let name = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        return Parsed::Command(end + 1, name);
    }
    let Some(end) = line_end(buf, 1) else {
        return Parsed::Incomplete;
    };
    let Some(count) = parse_number(&buf[1..end]) else {
        return Parsed::Invalid;
    };
    let mut at = end + 2;
    let mut name = String::new();
    for i in 0..count {
        match buf.get(at) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(_) => return Parsed::Invalid,
        }
        let Some(end) = line_end(buf, at + 1) else {
            return Parsed::Incomplete;
        };
        let Some(len) = parse_number(&buf[at + 1..end]) else {
            return Parsed::Invalid;
        };
        let start = end + 2;
        let Some(stop) = start.checked_add(len) else {
            return Parsed::Invalid;
        };
        if buf.len() < stop + 2 {
            return Parsed::Incomplete;
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Parsed::Invalid;
        }
        if i == 0 {
            name = String::from_utf8_lossy(&buf[start..stop]).to_ascii_uppercase();
        }
        at = stop + 2;
    }
    Parsed::Command(at, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resp_and_inline_commands() {
        let cmd = b"*3\r\n$7\r\nEVALSHA\r\n$1\r\n0\r\n$3\r\nabc\r\n";
        assert_eq!(
            parse_command(cmd),
            Parsed::Command(cmd.len(), "EVALSHA".into())
        );
        assert_eq!(parse_command(&cmd[..cmd.len() - 1]), Parsed::Incomplete);
        assert_eq!(parse_command(b"*1\r\n$4\r\nping"), Parsed::Incomplete);
        assert_eq!(
            parse_command(b"*1\r\n$4\r\nping\r\n*1"),
            Parsed::Command(14, "PING".into())
        );
        assert_eq!(
            parse_command(b"ping\r\n"),
            Parsed::Command(6, "PING".into())
        );
        assert_eq!(parse_command(b"*x\r\n"), Parsed::Invalid);
        assert_eq!(parse_command(b"*1\r\n:1\r\n"), Parsed::Invalid);
        assert_eq!(parse_command(b""), Parsed::Incomplete);
    }
}
